package emulator_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkTokenClientCredentials measures the token endpoint over HTTPS with keep-alive: client
// authentication, scope resolution, token minting (one RSA signature) and JSON encoding.
func BenchmarkTokenClientCredentials(b *testing.B) {
	em := startEmulator(b, nil)
	s := em.Info().Apps.Server
	body := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {graphDefault}}.Encode()
	benchPost(b, em.HTTPClient(), tokenURL(em), body)
}

// BenchmarkTokenOnBehalfOf adds the assertion's RSA verification to the minting cost.
func BenchmarkTokenOnBehalfOf(b *testing.B) {
	em := startEmulator(b, nil)
	s := em.Info().Apps.Server
	body := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret},
		"assertion": {userToken(b, em, "alice")}, "scope": {graphDefault}, "requested_token_use": {"on_behalf_of"}}.Encode()
	benchPost(b, em.HTTPClient(), tokenURL(em), body)
}

func benchPost(b *testing.B, client *http.Client, u, body string) {
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(u, "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
