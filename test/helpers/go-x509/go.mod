module talos-gate/test/go-x509

go 1.19
