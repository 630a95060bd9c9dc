package setup

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec: the thumbprint Entra shows is SHA-1; it names, it does not protect
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"time"
)

// NewCertificate makes a self-signed RSA certificate valid for a year and returns the PEM of
// the certificate and its key (for ENTRA_CLIENT_CERTIFICATE, mode 0600) and of the certificate
// alone (to upload).
func NewCertificate(name string) (certAndKey, certOnly []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certOnly = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(append([]byte{}, certOnly...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), certOnly, nil
}

// parseCert returns the base64 DER and the SHA-1 thumbprint (hex) of the first certificate.
func parseCert(p []byte) (string, string, error) {
	for {
		var b *pem.Block
		if b, p = pem.Decode(p); b == nil {
			return "", "", errors.New("the certificate file holds no CERTIFICATE block")
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return "", "", err
			}
			sum := sha1.Sum(b.Bytes) // #nosec G401
			return base64.StdEncoding.EncodeToString(b.Bytes), strings.ToUpper(hex.EncodeToString(sum[:])), nil
		}
	}
}
