// go-x509: what Go's crypto/x509 and crypto/tls make of the certificates talos-gate issues.
//
// Talos' apid is a Go program: it parses client certificates with crypto/x509, verifies them with
// crypto/tls (RequireAndVerifyClientCert) and takes the roles from Subject.Organization. OpenSSL
// reads some malformed certificates differently from Go, so the tests ask Go itself. Standard
// library only: the tests build this without downloading anything.
//
//	go-x509 judge        stdin: JSON [{cert, ca, intermediates?}], stdout: JSON [report]
//	go-x509 apid CAFILE  an mTLS server like apid; prints {"port", "serverCa"} as one JSON line,
//	                     answers each client with its roles and CN, exits when stdin closes
//	go-x509 dial ADDR SERVERCA CHAIN KEY
//	                     a client like talosctl: presents the PEM chain as is (OpenSSL refuses to
//	                     load some certificates Go takes), prints {"answer"} (the server's JSON
//	                     as a string) or {"error"}
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"time"
)

type judgeInput struct {
	Cert          string   `json:"cert"`
	CA            string   `json:"ca"`
	Intermediates []string `json:"intermediates"`
	// RFC 3339; empty: now. Short-lived certificates are judged as of when they were seen.
	CurrentTime string `json:"currentTime"`
}

type attribute struct {
	OID   string `json:"oid"`
	Value string `json:"value"`
}

type name struct {
	Organization []string    `json:"organization"`
	CommonName   string      `json:"commonName"`
	Attributes   []attribute `json:"attributes"`
	// Hex DER, so a test can name this certificate as the issuer of another.
	Raw string `json:"raw"`
}

type extension struct {
	OID      string `json:"oid"`
	Critical bool   `json:"critical"`
}

type verifyResult struct {
	OK           bool    `json:"ok"`
	Error        *string `json:"error"`
	ChainLengths []int   `json:"chainLengths"`
}

type report struct {
	PemError *string `json:"pemError"`
	// PEM blocks after the first one (only the first is judged).
	ExtraPemBlocks int     `json:"extraPemBlocks"`
	ParseError     *string `json:"parseError"`
	// ParseCertificate refused the DER because of bytes after the certificate.
	TrailingDataRejected bool `json:"trailingDataRejected"`
	TrailingBytes        int  `json:"trailingBytes"`
	// What crypto/x509's parser skips over without a word (it reads the fields it wants and
	// ignores what follows them), found by a strict walk with encoding/asn1.
	StrictProblems []string `json:"strictProblems"`

	Version                     int         `json:"version"`
	IsCA                        bool        `json:"isCA"`
	BasicConstraintsValid       bool        `json:"basicConstraintsValid"`
	MaxPathLen                  int         `json:"maxPathLen"`
	MaxPathLenZero              bool        `json:"maxPathLenZero"`
	KeyUsage                    []string    `json:"keyUsage"`
	ExtKeyUsage                 []string    `json:"extKeyUsage"`
	UnknownExtKeyUsage          []string    `json:"unknownExtKeyUsage"`
	Extensions                  []extension `json:"extensions"`
	UnhandledCriticalExtensions []string    `json:"unhandledCriticalExtensions"`
	Subject                     name        `json:"subject"`
	Issuer                      name        `json:"issuer"`
	NotBefore                   string      `json:"notBefore"`
	NotAfter                    string      `json:"notAfter"`
	SerialNumber                string      `json:"serialNumber"`
	RawSubjectPublicKeyInfo     string      `json:"rawSubjectPublicKeyInfo"`
	// x509.MarshalPKIXPublicKey of the parsed key: Go's own encoding of the key it read.
	MarshaledPublicKey *string      `json:"marshaledPublicKey"`
	PublicKeyAlgorithm string       `json:"publicKeyAlgorithm"`
	SignatureAlgorithm string       `json:"signatureAlgorithm"`
	Verify             verifyResult `json:"verify"`
}

var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "contentCommitment"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:                            "any",
	x509.ExtKeyUsageServerAuth:                     "serverAuth",
	x509.ExtKeyUsageClientAuth:                     "clientAuth",
	x509.ExtKeyUsageCodeSigning:                    "codeSigning",
	x509.ExtKeyUsageEmailProtection:                "emailProtection",
	x509.ExtKeyUsageIPSECEndSystem:                 "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:                    "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:                      "ipsecUser",
	x509.ExtKeyUsageTimeStamping:                   "timeStamping",
	x509.ExtKeyUsageOCSPSigning:                    "ocspSigning",
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     "msSGC",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      "nsSGC",
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: "msCommercialCodeSigning",
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     "msKernelCodeSigning",
}

func strp(s string) *string { return &s }

func nameOf(n pkix.Name, raw []byte) name {
	out := name{Organization: n.Organization, CommonName: n.CommonName, Attributes: []attribute{}, Raw: hex.EncodeToString(raw)}
	if out.Organization == nil {
		out.Organization = []string{}
	}
	for _, a := range n.Names {
		out.Attributes = append(out.Attributes, attribute{OID: a.Type.String(), Value: fmt.Sprint(a.Value)})
	}
	return out
}

// children reads the contents of a constructed element as a list of DER elements.
func children(contents []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(contents) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(contents, &v)
		if err != nil {
			return out, err
		}
		out = append(out, v)
		contents = rest
	}
	return out, nil
}

func is(v asn1.RawValue, class, tag int, compound bool) bool {
	return v.Class == class && v.Tag == tag && v.IsCompound == compound
}

const (
	universal = asn1.ClassUniversal
	context   = asn1.ClassContextSpecific
)

// strictProblems walks the certificate as RFC 5280 lays it out and lists every element crypto/x509
// would not look at: bytes after the certificate, after the signature, in the SPKI after its BIT
// STRING, in the TBSCertificate after the extensions, in an extension after its value. encoding/asn1
// also refuses what is not DER (non-minimal lengths, indefinite lengths).
func strictProblems(der []byte) []string {
	problems := []string{}
	add := func(format string, args ...interface{}) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var cert asn1.RawValue
	rest, err := asn1.Unmarshal(der, &cert)
	if err != nil {
		add("certificate: %v", err)
		return problems
	}
	if len(rest) > 0 {
		add("%d bytes after the certificate", len(rest))
	}
	top, err := children(cert.Bytes)
	if err != nil {
		add("certificate contents: %v", err)
	}
	if len(top) != 3 {
		add("certificate has %d elements, not 3 (tbsCertificate, signatureAlgorithm, signature)", len(top))
	}
	if len(top) < 1 {
		return problems
	}
	tbs, err := children(top[0].Bytes)
	if err != nil {
		add("tbsCertificate contents: %v", err)
	}
	i := 0
	if i < len(tbs) && is(tbs[i], context, 0, true) {
		i++
	}
	// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
	want := []struct {
		tag      int
		compound bool
		what     string
	}{{asn1.TagInteger, false, "serialNumber"}, {asn1.TagSequence, true, "signature"}, {asn1.TagSequence, true, "issuer"}, {asn1.TagSequence, true, "validity"}, {asn1.TagSequence, true, "subject"}, {asn1.TagSequence, true, "subjectPublicKeyInfo"}}
	for _, w := range want {
		if i >= len(tbs) || !is(tbs[i], universal, w.tag, w.compound) {
			add("tbsCertificate: no %s where expected", w.what)
			return problems
		}
		if w.what == "subjectPublicKeyInfo" {
			spki, err := children(tbs[i].Bytes)
			if err != nil {
				add("subjectPublicKeyInfo contents: %v", err)
			}
			if len(spki) != 2 || !is(spki[0], universal, asn1.TagSequence, true) || !is(spki[1], universal, asn1.TagBitString, false) {
				add("subjectPublicKeyInfo has %d elements, not AlgorithmIdentifier and BIT STRING", len(spki))
			}
			if len(spki) >= 1 {
				alg, err := children(spki[0].Bytes)
				if err != nil {
					add("subjectPublicKeyInfo algorithm: %v", err)
				}
				if len(alg) < 1 || len(alg) > 2 {
					add("subjectPublicKeyInfo algorithm has %d elements", len(alg))
				}
			}
			if len(spki) >= 2 && (len(spki[1].Bytes) < 1 || spki[1].Bytes[0] != 0) {
				add("subjectPublicKey BIT STRING has unused bits")
			}
		}
		i++
	}
	for _, tag := range []int{1, 2} {
		if i < len(tbs) && tbs[i].Class == context && tbs[i].Tag == tag {
			add("tbsCertificate has a [%d] unique identifier", tag)
			i++
		}
	}
	if i < len(tbs) && is(tbs[i], context, 3, true) {
		wrapped, err := children(tbs[i].Bytes)
		if err != nil || len(wrapped) != 1 || !is(wrapped[0], universal, asn1.TagSequence, true) {
			add("extensions [3] does not hold exactly one SEQUENCE")
		} else {
			exts, err := children(wrapped[0].Bytes)
			if err != nil {
				add("extensions: %v", err)
			}
			for n, e := range exts {
				parts, err := children(e.Bytes)
				if err != nil {
					add("extension %d: %v", n, err)
				}
				if len(parts) < 2 || len(parts) > 3 {
					add("extension %d has %d elements", n, len(parts))
				}
			}
		}
		i++
	}
	if i < len(tbs) {
		add("%d elements in tbsCertificate after the extensions (Go ignores them)", len(tbs)-i)
	}
	return problems
}

func judge(in judgeInput) report {
	r := report{StrictProblems: []string{}, KeyUsage: []string{}, ExtKeyUsage: []string{}, UnknownExtKeyUsage: []string{}, Extensions: []extension{}, UnhandledCriticalExtensions: []string{}, Verify: verifyResult{ChainLengths: []int{}}}
	r.Subject = nameOf(pkix.Name{}, nil)
	r.Issuer = nameOf(pkix.Name{}, nil)
	block, rest := pem.Decode([]byte(in.Cert))
	if block == nil || block.Type != "CERTIFICATE" {
		r.PemError = strp("no CERTIFICATE PEM block")
		return r
	}
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		r.ExtraPemBlocks++
	}
	var outer asn1.RawValue
	if after, err := asn1.Unmarshal(block.Bytes, &outer); err == nil {
		r.TrailingBytes = len(after)
	}
	r.StrictProblems = strictProblems(block.Bytes)

	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		r.ParseError = strp(err.Error())
		r.TrailingDataRejected = err.Error() == "x509: trailing data"
		return r
	}
	r.Version = cert.Version
	r.IsCA = cert.IsCA
	r.BasicConstraintsValid = cert.BasicConstraintsValid
	r.MaxPathLen = cert.MaxPathLen
	r.MaxPathLenZero = cert.MaxPathLenZero
	for _, ku := range keyUsageNames {
		if cert.KeyUsage&ku.bit != 0 {
			r.KeyUsage = append(r.KeyUsage, ku.name)
		}
	}
	for _, eku := range cert.ExtKeyUsage {
		n, ok := extKeyUsageNames[eku]
		if !ok {
			n = fmt.Sprintf("ExtKeyUsage(%d)", eku)
		}
		r.ExtKeyUsage = append(r.ExtKeyUsage, n)
	}
	for _, oid := range cert.UnknownExtKeyUsage {
		r.UnknownExtKeyUsage = append(r.UnknownExtKeyUsage, oid.String())
	}
	for _, e := range cert.Extensions {
		r.Extensions = append(r.Extensions, extension{OID: e.Id.String(), Critical: e.Critical})
	}
	for _, oid := range cert.UnhandledCriticalExtensions {
		r.UnhandledCriticalExtensions = append(r.UnhandledCriticalExtensions, oid.String())
	}
	r.Subject = nameOf(cert.Subject, cert.RawSubject)
	r.Issuer = nameOf(cert.Issuer, cert.RawIssuer)
	r.NotBefore = cert.NotBefore.UTC().Format(time.RFC3339)
	r.NotAfter = cert.NotAfter.UTC().Format(time.RFC3339)
	r.SerialNumber = cert.SerialNumber.Text(16)
	r.RawSubjectPublicKeyInfo = hex.EncodeToString(cert.RawSubjectPublicKeyInfo)
	if m, err := x509.MarshalPKIXPublicKey(cert.PublicKey); err == nil {
		r.MarshaledPublicKey = strp(hex.EncodeToString(m))
	}
	r.PublicKeyAlgorithm = cert.PublicKeyAlgorithm.String()
	r.SignatureAlgorithm = cert.SignatureAlgorithm.String()

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(in.CA)) {
		r.Verify.Error = strp("the CA PEM holds no certificate Go can read")
		return r
	}
	intermediates := x509.NewCertPool()
	for _, p := range in.Intermediates {
		intermediates.AppendCertsFromPEM([]byte(p))
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if in.CurrentTime != "" {
		at, err := time.Parse(time.RFC3339Nano, in.CurrentTime)
		if err != nil {
			r.Verify.Error = strp("currentTime: " + err.Error())
			return r
		}
		opts.CurrentTime = at
	}
	chains, err := cert.Verify(opts)
	if err != nil {
		r.Verify.Error = strp(err.Error())
		return r
	}
	r.Verify.OK = true
	for _, c := range chains {
		r.Verify.ChainLengths = append(r.Verify.ChainLengths, len(c))
	}
	return r
}

func runJudge() error {
	var inputs []judgeInput
	if err := json.NewDecoder(os.Stdin).Decode(&inputs); err != nil {
		return fmt.Errorf("reading the input: %w", err)
	}
	reports := make([]report, 0, len(inputs))
	for _, in := range inputs {
		reports = append(reports, judge(in))
	}
	return json.NewEncoder(os.Stdout).Encode(reports)
}

// runApid serves TLS 1.3 as apid does: client certificates required and verified against the CA
// (crypto/tls checks clientAuth), roles from the verified peer's Subject.Organization. The server
// certificate is a throwaway self-signed one for 127.0.0.1, printed for the client to trust.
func runApid(caFile string) error {
	caPem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPem) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "apid"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS13,
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return err
	}
	hello, _ := json.Marshal(map[string]interface{}{
		"port":     ln.Addr().(*net.TCPAddr).Port,
		"serverCa": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	})
	fmt.Println(string(hello))
	go func() {
		// the parent closes stdin (or dies): stop
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func(conn net.Conn) {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			tc := conn.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				fmt.Fprintf(os.Stderr, "handshake: %v\n", err)
				return
			}
			peer := tc.ConnectionState().PeerCertificates[0]
			orgs := peer.Subject.Organization
			if orgs == nil {
				orgs = []string{}
			}
			answer, _ := json.Marshal(map[string]interface{}{"organizations": orgs, "cn": peer.Subject.CommonName, "isCA": peer.IsCA})
			_, _ = tc.Write(answer)
		}(conn)
	}
}

// runDial connects with a client certificate chain the way a Go client (talosctl) would: the DER
// of every certificate is sent as it is, only the leaf's key is checked.
func runDial(addr, serverCAFile, chainFile, keyFile string) error {
	serverCA, err := os.ReadFile(serverCAFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(serverCA) {
		return fmt.Errorf("%s holds no certificate", serverCAFile)
	}
	chainPem, err := os.ReadFile(chainFile)
	if err != nil {
		return err
	}
	var chain [][]byte
	for rest := chainPem; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		chain = append(chain, b.Bytes)
	}
	keyPem, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	kb, _ := pem.Decode(keyPem)
	if kb == nil {
		return fmt.Errorf("%s holds no PEM key", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return err
	}
	out := map[string]interface{}{}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: key}}, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var answer []byte
		// with TLS 1.3 the server's verdict on the client certificate arrives with the first read
		answer, err = io.ReadAll(conn)
		conn.Close()
		if err == nil {
			out["answer"] = string(answer)
		}
	}
	if err != nil {
		out["error"] = err.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func main() {
	var err error
	switch {
	case len(os.Args) == 2 && os.Args[1] == "judge":
		err = runJudge()
	case len(os.Args) == 3 && os.Args[1] == "apid":
		err = runApid(os.Args[2])
	case len(os.Args) == 6 && os.Args[1] == "dial":
		err = runDial(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	default:
		err = fmt.Errorf("usage: go-x509 judge < input.json | go-x509 apid CA.pem | go-x509 dial ADDR SERVERCA.pem CHAIN.pem KEY.pem")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-x509:", err)
		os.Exit(1)
	}
}
