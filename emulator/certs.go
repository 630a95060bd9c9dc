package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec: x5t is defined by Entra as the SHA-1 thumbprint; it is an identifier, not a security check.
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// authority is the emulator's certificate authority. Its certificate is written to a file so
// that clients (MSAL, our own packages, curl) can trust the emulator's HTTPS endpoints.
type authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// loadOrCreateCA reuses the CA stored in dir (so a restarted `entramcp dev` keeps the CA file a
// user already configured) or creates a new one. An empty dir means "in memory only".
func loadOrCreateCA(dir string) (*authority, error) {
	var path string
	if dir != "" {
		path = filepath.Join(dir, "ca-key.pem")
		if data, err := os.ReadFile(path); err == nil {
			ca, err := parseCA(data)
			if err == nil && time.Now().Before(ca.cert.NotAfter.Add(-24*time.Hour)) {
				return ca, nil
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "entramcp emulator CA", Organization: []string{"entramcp (local test only)"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &authority{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	if path != "" {
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		data := append(append([]byte{}, ca.certPEM...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
		if err := writeFileAtomic(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

func parseCA(data []byte) (*authority, error) {
	var ca authority
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			ca.cert = cert
			ca.certPEM = pem.EncodeToMemory(block)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			ec, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, errors.New("CA key is not ECDSA")
			}
			ca.key = ec
		}
	}
	if ca.cert == nil || ca.key == nil {
		return nil, errors.New("CA file lacks a certificate or key")
	}
	return &ca, nil
}

// LoopbackCertificate issues a TLS certificate for 127.0.0.1, ::1 and localhost from the CA
// that `entramcp dev` and `entramcp emulator` keep in stateDir, so a test's own https server
// (a client metadata document, say) is trusted by whatever trusts the emulator.
func LoopbackCertificate(stateDir string) (tls.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, "ca-key.pem"))
	if err != nil {
		return tls.Certificate{}, err
	}
	ca, err := parseCA(data)
	if err != nil {
		return tls.Certificate{}, err
	}
	return ca.serverCertificate()
}

// serverCertificate issues a short-lived TLS certificate for the loopback names.
func (ca *authority) serverCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(0, 3, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}, nil
}

// signingKey is one RSA token-signing key with the self-signed certificate Entra publishes in x5c.
type signingKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	kid  string // equals x5t: base64url SHA-1 of the certificate, as in Entra
}

func newSigningKey() (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return signingKeyFrom(key)
}

func signingKeyFrom(key *rsa.PrivateKey) (*signingKey, error) {
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    time.Now().AddDate(0, 0, -1),
		NotAfter:     time.Now().AddDate(5, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &signingKey{key: key, cert: cert, kid: thumbprintSHA1(cert.Raw)}, nil
}

// loadOrCreateSigningKey keeps the token-signing key and its certificate across restarts of
// `entramcp dev`, so the kid stays the same and tokens issued before a restart still verify.
func loadOrCreateSigningKey(dir string) (*signingKey, error) {
	if dir == "" {
		return newSigningKey()
	}
	path := filepath.Join(dir, "signing-key.pem")
	if data, err := os.ReadFile(path); err == nil {
		if sk := parseSigningKey(data); sk != nil {
			return sk, nil
		}
	}
	sk, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(sk.key)
	if err != nil {
		return nil, err
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sk.cert.Raw})...)
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return nil, err
	}
	return sk, nil
}

func parseSigningKey(data []byte) *signingKey {
	var sk signingKey
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
			if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
				sk.key, _ = k.(*rsa.PrivateKey)
			}
		case "CERTIFICATE":
			sk.cert, _ = x509.ParseCertificate(block.Bytes)
		}
	}
	if sk.key == nil || sk.cert == nil || !sk.key.PublicKey.Equal(sk.cert.PublicKey) {
		return nil
	}
	sk.kid = thumbprintSHA1(sk.cert.Raw)
	return &sk
}

func (k *signingKey) jwk(issuer string) map[string]any {
	return map[string]any{
		"kty":    "RSA",
		"use":    "sig",
		"kid":    k.kid,
		"x5t":    k.kid,
		"n":      base64.RawURLEncoding.EncodeToString(k.key.N.Bytes()),
		"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.key.E)).Bytes()),
		"x5c":    []string{base64.StdEncoding.EncodeToString(k.cert.Raw)},
		"issuer": issuer,
	}
}

// thumbprintSHA1 is the x5t form: base64url without padding of the certificate's SHA-1 digest.
func thumbprintSHA1(der []byte) string {
	sum := sha1.Sum(der) // #nosec G401 -- identifier required by the wire format
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return n
}

// writeFileAtomic writes through a temporary file so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
