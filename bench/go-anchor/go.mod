module talos-gate/bench/go-anchor

go 1.19
