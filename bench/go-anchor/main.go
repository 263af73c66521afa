// The bench's anchor: what a user would run instead of the gate for the certificate exchange, a Go
// standard-library server in the manner of talosctl-oidc. It does the exchange's cryptography and
// nothing else: it verifies the ID token against the IdP's JWKS (discovered once, cached), maps a
// groups claim to Talos roles, reads the client's Ed25519 public key (or makes one) and signs the
// client certificate with crypto/x509. No persistence, no audit, no blocks, no rate limits: the
// bench measures how close the gate, which does all of those, comes to it.
//
// Flags: -listen, -issuer, -audiences (comma-separated), -ca-cert, -ca-key (PEM; the key PKCS#8),
// -tls-ca-out (where the self-signed TLS certificate is written for the load generator),
// -claim/-value/-roles (one rule), -subject-claim, -ttl, -endpoints.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

type keySet struct {
	mu   sync.RWMutex
	url  string
	keys map[string]crypto.PublicKey
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func (ks *keySet) fetch() error {
	res, err := http.Get(ks.url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return err
	}
	keys := map[string]crypto.PublicKey{}
	for _, k := range doc.Keys {
		switch k.Kty {
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, err1 := b64(k.X)
			y, err2 := b64(k.Y)
			if err1 != nil || err2 != nil {
				continue
			}
			keys[k.Kid] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		case "RSA":
			n, err1 := b64(k.N)
			e, err2 := b64(k.E)
			if err1 != nil || err2 != nil {
				continue
			}
			keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
	}
	ks.mu.Lock()
	ks.keys = keys
	ks.mu.Unlock()
	return nil
}

func (ks *keySet) get(kid string) crypto.PublicKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.keys[kid]
}

type server struct {
	issuer       string
	audiences    map[string]bool
	jwks         *keySet
	caCert       *x509.Certificate
	caPEM        string
	caKey        crypto.Signer
	claim, value string
	roles        []string
	subjectClaim string
	ttl          time.Duration
	endpoints    []string
}

// verify checks the JWS signature (ES256 or RS256) and the claims an OIDC relying party must check
// (iss, aud, exp, iat, sub), and returns the claims.
func (s *server) verify(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("malformed token")
	}
	hb, err := b64(parts[0])
	if err != nil {
		return nil, err
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return nil, err
	}
	sig, err := b64(parts[2])
	if err != nil {
		return nil, err
	}
	key := s.jwks.get(header.Kid)
	if key == nil {
		return nil, errors.New("unknown key")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch header.Alg {
	case "ES256":
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return nil, errors.New("bad signature")
		}
	case "RS256":
		pub, ok := key.(*rsa.PublicKey)
		if !ok || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
			return nil, errors.New("bad signature")
		}
	default:
		return nil, errors.New("algorithm not allowed")
	}
	pb, err := b64(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(pb, &claims); err != nil {
		return nil, err
	}
	if claims["iss"] != s.issuer {
		return nil, errors.New("wrong issuer")
	}
	audOK := false
	switch aud := claims["aud"].(type) {
	case string:
		audOK = s.audiences[aud]
	case []any:
		for _, a := range aud {
			if as, ok := a.(string); ok && s.audiences[as] {
				audOK = true
			}
		}
	}
	if !audOK {
		return nil, errors.New("wrong audience")
	}
	now := float64(time.Now().Unix())
	exp, ok := claims["exp"].(float64)
	if !ok || exp < now-60 {
		return nil, errors.New("expired")
	}
	if iat, ok := claims["iat"].(float64); !ok || iat > now+60 {
		return nil, errors.New("bad iat")
	}
	if sub, ok := claims["sub"].(string); !ok || sub == "" {
		return nil, errors.New("no sub")
	}
	return claims, nil
}

func (s *server) mapRoles(claims map[string]any) []string {
	var values []string
	switch v := claims[s.claim].(type) {
	case string:
		values = strings.Fields(v)
	case []any:
		for _, x := range v {
			if xs, ok := x.(string); ok {
				values = append(values, xs)
			}
		}
	}
	for _, v := range values {
		if v == s.value {
			roles := append([]string(nil), s.roles...)
			sort.Strings(roles)
			return roles
		}
	}
	return nil
}

type exchangeBody struct {
	IDToken   string `json:"id_token"`
	PublicKey string `json:"public_key"`
}

type exchangeResponse struct {
	CA          string   `json:"ca"`
	Cert        string   `json:"cert"`
	Key         string   `json:"key,omitempty"`
	Endpoints   []string `json:"endpoints"`
	Roles       []string `json:"roles"`
	Subject     string   `json:"subject"`
	Sub         string   `json:"sub"`
	Serial      string   `json:"serial"`
	Fingerprint string   `json:"fingerprint"`
	ExpiresAt   string   `json:"expires_at"`
	TTLSeconds  int64    `json:"ttl_seconds"`
}

func fail(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *server) exchange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(w, 405, "invalid_request", "POST only")
		return
	}
	var body exchangeBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		fail(w, 400, "invalid_request", "body is not JSON")
		return
	}
	token := body.IDToken
	if auth := r.Header.Get("Authorization"); token == "" && len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		token = strings.TrimSpace(auth[7:])
	}
	claims, err := s.verify(token)
	if err != nil {
		fail(w, 401, "invalid_token", err.Error())
		return
	}
	roles := s.mapRoles(claims)
	if len(roles) == 0 {
		fail(w, 403, "forbidden", "no Talos role is mapped to this identity")
		return
	}
	var pub ed25519.PublicKey
	var keyPEM string
	if body.PublicKey != "" {
		block, _ := pem.Decode([]byte(body.PublicKey))
		if block == nil || block.Type != "PUBLIC KEY" {
			fail(w, 400, "invalid_request", "public_key is not a PEM PUBLIC KEY")
			return
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		k, ok := parsed.(ed25519.PublicKey)
		if err != nil || !ok {
			fail(w, 400, "invalid_request", "public_key is not an Ed25519 key")
			return
		}
		pub = k
	} else {
		k, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			fail(w, 500, "server_error", err.Error())
			return
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		pub = k
	}
	sub := claims["sub"].(string)
	cn := sub
	if named, ok := claims[s.subjectClaim].(string); ok && strings.TrimSpace(named) != "" {
		cn = named
	}
	serialBytes := make([]byte, 16)
	_, _ = rand.Read(serialBytes)
	serialBytes[0] = serialBytes[0]&0x7f | 0x40
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	skid := sha1.Sum(spki)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(serialBytes),
		Subject:      pkix.Name{Organization: roles, CommonName: cn},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(s.ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SubjectKeyId: skid[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, pub, s.caKey)
	if err != nil {
		fail(w, 500, "server_error", err.Error())
		return
	}
	fp := sha256.Sum256(der)
	resp := exchangeResponse{
		CA:          s.caPEM,
		Cert:        string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		Key:         keyPEM,
		Endpoints:   s.endpoints,
		Roles:       roles,
		Subject:     cn,
		Sub:         sub,
		Serial:      hex.EncodeToString(serialBytes),
		Fingerprint: hex.EncodeToString(fp[:]),
		ExpiresAt:   tmpl.NotAfter.UTC().Format(time.RFC3339Nano),
		TTLSeconds:  int64(s.ttl / time.Second),
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// selfSignedTLS is the listener's certificate, P-256 like the gate's own (server/tls/self-signed.ts).
func selfSignedTLS(out string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "go-anchor"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func readPEM(path string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return block, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	issuer := flag.String("issuer", "", "OIDC issuer URL")
	audiences := flag.String("audiences", "", "accepted audiences, comma-separated")
	caCertPath := flag.String("ca-cert", "", "signing CA certificate (PEM)")
	caKeyPath := flag.String("ca-key", "", "signing CA key (PKCS#8 PEM)")
	tlsOut := flag.String("tls-ca-out", "", "where to write the TLS certificate")
	claim := flag.String("claim", "groups", "claim a rule matches")
	value := flag.String("value", "ops", "value the claim must hold")
	roles := flag.String("roles", "os:operator", "roles the rule grants, comma-separated")
	subjectClaim := flag.String("subject-claim", "email", "claim that names the certificate's CN")
	ttl := flag.Duration("ttl", 5*time.Minute, "certificate lifetime")
	endpoints := flag.String("endpoints", "10.0.0.1", "Talos endpoints, comma-separated")
	flag.Parse()

	certBlock, err := readPEM(*caCertPath)
	if err != nil {
		log.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		log.Fatal(err)
	}
	keyBlock, err := readPEM(*caKeyPath)
	if err != nil {
		log.Fatal(err)
	}
	caKeyAny, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		log.Fatal(err)
	}
	caKey, ok := caKeyAny.(crypto.Signer)
	if !ok {
		log.Fatal("CA key cannot sign")
	}

	// OIDC discovery once, then the JWKS
	res, err := http.Get(strings.TrimSuffix(*issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		log.Fatal(err)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(res.Body).Decode(&meta)
	res.Body.Close()
	if err != nil || meta.Issuer != *issuer || meta.JWKSURI == "" {
		log.Fatalf("discovery failed: %v %+v", err, meta)
	}
	ks := &keySet{url: meta.JWKSURI}
	if err := ks.fetch(); err != nil {
		log.Fatal(err)
	}

	s := &server{
		issuer:       *issuer,
		audiences:    map[string]bool{},
		jwks:         ks,
		caCert:       caCert,
		caPEM:        string(pem.EncodeToMemory(certBlock)),
		caKey:        caKey,
		claim:        *claim,
		value:        *value,
		roles:        strings.Split(*roles, ","),
		subjectClaim: *subjectClaim,
		ttl:          *ttl,
		endpoints:    strings.Split(*endpoints, ","),
	}
	for _, a := range strings.Split(*audiences, ",") {
		s.audiences[a] = true
	}
	tlsCert, err := selfSignedTLS(*tlsOut)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/exchange", s.exchange)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{tlsCert}}}
	log.Fatal(srv.ServeTLS(ln, "", ""))
}
