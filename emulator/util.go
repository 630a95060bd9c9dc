package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
)

// deriveGUID makes a stable GUID from a kind and a key, so derived objects (service principals,
// pairwise subjects) keep their ids across restarts.
func deriveGUID(kind, key string) string {
	s := sha256.Sum256([]byte(kind + "\x00" + key))
	s[6] = (s[6] & 0x0f) | 0x40
	s[8] = (s[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// pairwiseSubject is the per-app `sub` claim: stable for a user and app, different across apps.
func pairwiseSubject(oid, appID string) string {
	s := sha256.Sum256([]byte("sub\x00" + oid + "\x00" + appID))
	return base64.RawURLEncoding.EncodeToString(s[:])[:43]
}

// randomToken returns n random bytes, base64url encoded: codes, refresh tokens, secrets.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(s string) string {
	h := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// isLoopback reports whether the request came from this machine.
func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
