package entra

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/entramcp/entramcp/internal/ids"
)

// Credential authenticates the app at Entra's token endpoint. Certificates and managed
// identities are the production path; secrets expire and leak.
type Credential interface {
	// Apply adds the client authentication parameters to a token request for tokenEndpoint.
	Apply(ctx context.Context, form url.Values, tokenEndpoint string) error
	// Kind names the credential for logs and doctor output: "secret", "certificate",
	// "managed-identity".
	Kind() string
}

// SecretCredential is a client secret, sent as client_secret.
func SecretCredential(secret string) Credential { return secretCred(secret) }

type secretCred string

func (s secretCred) Apply(_ context.Context, form url.Values, _ string) error {
	if s == "" {
		return errors.New("ENTRA_CLIENT_SECRET is empty")
	}
	form.Set("client_secret", string(s))
	return nil
}

func (secretCred) Kind() string { return "secret" }

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// CertificateCredential signs a client assertion with the certificate's key: PS256 with the
// x5t#S256 thumbprint, as MSAL does. The key must be RSA.
func CertificateCredential(cert *x509.Certificate, key crypto.Signer) (Credential, error) {
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("ENTRA_CLIENT_CERTIFICATE: the private key must be RSA")
	}
	if !rk.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("ENTRA_CLIENT_CERTIFICATE: the private key does not match the certificate")
	}
	sum := sha256.Sum256(cert.Raw)
	return &certCred{key: rk, x5t: base64.RawURLEncoding.EncodeToString(sum[:]), notAfter: cert.NotAfter}, nil
}

type certCred struct {
	key      *rsa.PrivateKey
	x5t      string
	notAfter time.Time
}

func (c *certCred) Kind() string { return "certificate" }

func (c *certCred) Apply(_ context.Context, form url.Values, tokenEndpoint string) error {
	now := time.Now()
	if now.After(c.notAfter) {
		return fmt.Errorf("ENTRA_CLIENT_CERTIFICATE expired on %s", c.notAfter.Format(time.DateOnly))
	}
	clientID := form.Get("client_id")
	h, _ := json.Marshal(map[string]string{"alg": "PS256", "typ": "JWT", "x5t#S256": c.x5t})
	p, _ := json.Marshal(map[string]any{"aud": tokenEndpoint, "iss": clientID, "sub": clientID, "jti": ids.NewGUID(),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPSS(rand.Reader, c.key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		return err
	}
	form.Set("client_assertion_type", assertionType)
	form.Set("client_assertion", in+"."+base64.RawURLEncoding.EncodeToString(sig))
	return nil
}

// LoadCertificate reads the certificate credential: a PEM file holding the certificate and its
// unencrypted PKCS#1 or PKCS#8 RSA private key, or a PFX (PKCS#12) file, with its password.
func LoadCertificate(path, password string) (Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ENTRA_CLIENT_CERTIFICATE: %w", err)
	}
	if !strings.Contains(string(data[:min(len(data), 4096)]), "-----BEGIN") {
		key, cert, _, err := pkcs12.DecodeChain(data, password)
		if err != nil {
			return nil, fmt.Errorf("ENTRA_CLIENT_CERTIFICATE %s: not PEM, and not a PFX this password opens: %w", path, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("ENTRA_CLIENT_CERTIFICATE %s: unsupported key type", path)
		}
		return CertificateCredential(cert, signer)
	}
	var cert *x509.Certificate
	var key crypto.Signer
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if cert == nil {
				cert, err = x509.ParseCertificate(b.Bytes)
			}
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			var k any
			if k, err = x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				key, _ = k.(crypto.Signer)
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("ENTRA_CLIENT_CERTIFICATE: encrypted private keys are not supported; decrypt it or use a managed identity")
		}
		if err != nil {
			return nil, fmt.Errorf("ENTRA_CLIENT_CERTIFICATE %s: %w", path, err)
		}
	}
	if cert == nil || key == nil {
		return nil, fmt.Errorf("ENTRA_CLIENT_CERTIFICATE %s must hold a CERTIFICATE and its PRIVATE KEY in PEM", path)
	}
	return CertificateCredential(cert, key)
}

// ManagedIdentityOptions locate a managed identity token endpoint.
type ManagedIdentityOptions struct {
	// ClientID selects a user-assigned identity; empty means the system-assigned one.
	ClientID string
	// Audience is the token-exchange audience: api://AzureADTokenExchange, or the US Government
	// or China one (Cloud.TokenExchangeAudience).
	Audience string
	// IdentityEndpoint and IdentityHeader are App Service's IDENTITY_ENDPOINT and
	// IDENTITY_HEADER; when empty, the environment's, and without those IMDS.
	IdentityEndpoint, IdentityHeader string
	// IMDSEndpoint overrides http://169.254.169.254/metadata/identity/oauth2/token.
	IMDSEndpoint string
	HTTPClient   *http.Client
}

// ManagedIdentityCredential uses a managed identity as the app's federated credential: it gets
// a managed-identity token for the token-exchange audience and presents it as client_assertion.
// The app registration needs a federated identity credential for the identity's principal id.
func ManagedIdentityCredential(o ManagedIdentityOptions) Credential {
	if o.Audience == "" {
		o.Audience = PublicCloud.TokenExchangeAudience
	}
	if o.IdentityEndpoint == "" {
		o.IdentityEndpoint, o.IdentityHeader = os.Getenv("IDENTITY_ENDPOINT"), os.Getenv("IDENTITY_HEADER")
	}
	if o.IMDSEndpoint == "" {
		o.IMDSEndpoint = "http://169.254.169.254/metadata/identity/oauth2/token"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &miCred{o: o}
}

type miCred struct {
	o       ManagedIdentityOptions
	mu      sync.Mutex
	token   string
	expires time.Time
}

func (m *miCred) Kind() string { return "managed-identity" }

func (m *miCred) Apply(ctx context.Context, form url.Values, _ string) error {
	tok, err := m.assertion(ctx)
	if err != nil {
		return err
	}
	form.Set("client_assertion_type", assertionType)
	form.Set("client_assertion", tok)
	return nil
}

// assertion returns a cached managed-identity token, fetching a new one 5 minutes before expiry.
func (m *miCred) assertion(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token != "" && time.Now().Add(5*time.Minute).Before(m.expires) {
		return m.token, nil
	}
	q := url.Values{"resource": {m.o.Audience}}
	if m.o.ClientID != "" {
		q.Set("client_id", m.o.ClientID)
	}
	var req *http.Request
	var err error
	if m.o.IdentityEndpoint != "" {
		q.Set("api-version", "2019-08-01")
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, m.o.IdentityEndpoint+"?"+q.Encode(), nil)
		if err == nil {
			req.Header.Set("X-IDENTITY-HEADER", m.o.IdentityHeader)
		}
	} else {
		q.Set("api-version", "2018-02-01")
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, m.o.IMDSEndpoint+"?"+q.Encode(), nil)
		if err == nil {
			req.Header.Set("Metadata", "true")
		}
	}
	if err != nil {
		return "", err
	}
	resp, err := m.o.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: managed identity endpoint: %v", ErrEntraUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("managed identity endpoint answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	var r struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   any    `json:"expires_on"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" {
		return "", errors.New("managed identity endpoint returned no access_token")
	}
	var exp int64
	switch v := r.ExpiresOn.(type) {
	case string:
		exp, _ = strconv.ParseInt(v, 10, 64)
	case float64:
		exp = int64(v)
	}
	m.token, m.expires = r.AccessToken, time.Unix(exp, 0)
	if exp == 0 {
		m.expires = time.Now().Add(time.Hour)
	}
	return m.token, nil
}
