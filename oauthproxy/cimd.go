package oauthproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entramcp/entramcp/store"
)

// Documents resolves Client ID Metadata Documents (the MCP authorization spec's CIMD): a client
// whose client_id is an https URL publishes its metadata there, so it needs no registration.
// Fetching a URL an anonymous caller chose is a server-side request forgery risk, so the fetch
// is guarded: https only, no redirects, no private, loopback, link-local or otherwise internal
// address (checked on the address actually dialled, so DNS rebinding does not help), a 5 s
// limit and a 64 KiB document limit. Good documents are cached for TTL, failures for a minute.
type Documents struct {
	Store  store.Store
	Policy RedirectPolicy
	// TTL is how long a fetched document is reused when its response has no caching headers
	// (default 1 hour). Cache-Control max-age (or Expires) is honoured within 1 minute to 24
	// hours; no-store and no-cache mean the 1-minute floor, which bounds refetching.
	TTL time.Duration
	// RootCAs verifies the client's TLS certificate (nil: the system roots).
	RootCAs *x509.CertPool
	// AllowPrivateAddresses lifts the address guard: dev and tests, which serve documents on
	// 127.0.0.1 (ENTRAMCP_CIMD_ALLOW_PRIVATE).
	AllowPrivateAddresses bool
	// PerMinute bounds document fetches per caller address (default 10; cached lookups are
	// free), so nobody can make us fetch URLs of their choosing at a high rate.
	PerMinute int

	limits limiter
}

const (
	docKind      = "cimd"
	docFailKind  = "cimdfail"
	maxDocBytes  = 64 << 10
	docFetchTime = 5 * time.Second
)

// DocumentError says why a client's metadata document cannot be used. It matches
// ErrUnknownClient, so endpoints answer as for an unknown client, with this message.
type DocumentError struct{ Reason string }

func (e *DocumentError) Error() string { return "client metadata document: " + e.Reason }

// Unwrap makes a DocumentError an ErrUnknownClient.
func (e *DocumentError) Unwrap() error { return ErrUnknownClient }

func docErrorf(format string, args ...any) error {
	return &DocumentError{fmt.Sprintf(format, args...)}
}

// IsDocumentClientID reports whether a client_id is a metadata document URL: https, a host,
// a path other than "/", no user information, fragment or dot-segments, at most 2000 bytes.
func IsDocumentClientID(id string) bool {
	if len(id) > 2000 || !strings.HasPrefix(id, "https://") {
		return false
	}
	u, err := url.Parse(id)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(id, "#") || u.Path == "" || u.Path == "/" {
		return false
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." || strings.Contains(strings.ToLower(seg), "%2e") {
			return false
		}
	}
	return true
}

// Lookup returns the client a metadata document describes.
func (d *Documents) Lookup(ctx context.Context, clientID string) (*Client, error) {
	if !IsDocumentClientID(clientID) {
		return nil, ErrUnknownClient
	}
	key := hashKey(clientID)
	var c Client
	if err := getJSON(ctx, d.Store, docKind, key, &c); err == nil {
		return &c, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var failed string
	if err := getJSON(ctx, d.Store, docFailKind, key, &failed); err == nil {
		return nil, &DocumentError{failed}
	}
	if !d.limits.allow(callerFrom(ctx), d.PerMinute, time.Now()) {
		return nil, ErrRateLimited
	}
	cl, ttl, err := d.fetch(ctx, clientID)
	if err != nil {
		var de *DocumentError
		if errors.As(err, &de) {
			// Remember the failure briefly: a client_id cannot make us fetch in a loop.
			putJSON(ctx, d.Store, docFailKind, key, de.Reason, time.Minute)
		}
		return nil, err
	}
	if err := putJSON(ctx, d.Store, docKind, key, cl, ttl); err != nil {
		return nil, err
	}
	return cl, nil
}

// Forget drops a cached document, so the next lookup fetches it again (the client may have
// rotated its keys).
func (d *Documents) Forget(ctx context.Context, clientID string) {
	d.Store.Delete(ctx, docKind, hashKey(clientID))
}

// get fetches url through the guard: https, public addresses only, no redirects, limits.
func (d *Documents) get(ctx context.Context, rawURL, what string) ([]byte, time.Duration, error) {
	dialer := &net.Dialer{Timeout: docFetchTime, Control: d.checkAddress}
	client := &http.Client{
		Timeout: docFetchTime,
		Transport: &http.Transport{
			Proxy:                  nil, // a proxy would dial for us, past the address guard
			DialContext:            dialer.DialContext,
			TLSClientConfig:        &tls.Config{RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    docFetchTime,
			ResponseHeaderTimeout:  docFetchTime,
			MaxResponseHeaderBytes: 16 << 10,
			DisableKeepAlives:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil || req.URL.Scheme != "https" {
		return nil, 0, docErrorf("the %s is not a fetchable https URL", what)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var blocked *blockedAddress
		if errors.As(err, &blocked) {
			return nil, 0, docErrorf("%s resolves to a private or internal address (%s); metadata documents must be on the public internet", req.URL.Hostname(), blocked.addr)
		}
		return nil, 0, docErrorf("could not fetch %s: %v", rawURL, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, docErrorf("%s answered HTTP %d (redirects are not followed)", rawURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return nil, 0, docErrorf("reading %s: %v", rawURL, err)
	}
	if len(body) > maxDocBytes {
		return nil, 0, docErrorf("the %s is larger than %d bytes", what, maxDocBytes)
	}
	return body, d.cacheFor(resp.Header), nil
}

// cacheFor is how long a response may be reused, from its caching headers.
func (d *Documents) cacheFor(h http.Header) time.Duration {
	const floor, ceiling = time.Minute, 24 * time.Hour
	ttl := d.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	found := false
	for _, directive := range strings.Split(strings.ToLower(h.Get("Cache-Control")), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch name {
		case "no-store", "no-cache":
			return floor
		case "max-age", "s-maxage":
			if secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && secs >= 0 && !found {
				ttl, found = time.Duration(min(secs, int64(ceiling/time.Second)))*time.Second, true
			}
		}
	}
	if e := h.Get("Expires"); !found && e != "" {
		ttl = 0 // RFC 9111: an invalid date, such as "0", is in the past
		if exp, err := http.ParseTime(e); err == nil {
			ttl = time.Until(exp)
		}
	}
	return min(max(ttl, floor), ceiling)
}

func (d *Documents) fetch(ctx context.Context, clientID string) (*Client, time.Duration, error) {
	body, ttl, err := d.get(ctx, clientID, "document")
	if err != nil {
		return nil, 0, err
	}
	var doc struct {
		ClientID     string          `json:"client_id"`
		ClientName   string          `json:"client_name"`
		RedirectURIs []string        `json:"redirect_uris"`
		AuthMethod   string          `json:"token_endpoint_auth_method"`
		JWKS         json.RawMessage `json:"jwks"`
		JWKSURI      string          `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, docErrorf("the document is not a JSON object")
	}
	switch {
	case doc.ClientID != clientID:
		return nil, 0, docErrorf("the document's client_id %q is not its own URL", truncate(doc.ClientID, 200))
	case doc.AuthMethod != "" && doc.AuthMethod != authNone && doc.AuthMethod != authPrivateKeyJWT:
		return nil, 0, docErrorf("token_endpoint_auth_method %q is not supported; use none (a public client with PKCE) or private_key_jwt", truncate(doc.AuthMethod, 50))
	case len(doc.RedirectURIs) == 0 || len(doc.RedirectURIs) > 20:
		return nil, 0, docErrorf("redirect_uris must list 1 to 20 URIs")
	case len(doc.ClientName) > 200:
		return nil, 0, docErrorf("client_name is longer than 200 characters")
	}
	u, _ := url.Parse(clientID) // IsDocumentClientID parsed it already
	host := u.Hostname()
	for _, r := range doc.RedirectURIs {
		if err := d.Policy.Check(r); err != nil && !sameHostHTTPS(r, host) {
			return nil, 0, docErrorf("%v", err)
		}
	}
	name := doc.ClientName
	if name == "" {
		name = host
	}
	c := &Client{ClientID: clientID, ClientName: name, RedirectURIs: doc.RedirectURIs, IssuedAt: time.Now().UTC(), AuthMethod: doc.AuthMethod}
	if doc.AuthMethod == authPrivateKeyJWT {
		if c.JWKS, err = d.keys(ctx, doc.JWKS, doc.JWKSURI); err != nil {
			return nil, 0, err
		}
	} else if len(doc.JWKS) > 0 || doc.JWKSURI != "" {
		return nil, 0, docErrorf("the document publishes keys but its token_endpoint_auth_method is not private_key_jwt")
	}
	return c, ttl, nil
}

// keys resolves a private_key_jwt client's JWKS: inline, or from jwks_uri through the same
// guard as the document (fetched once, cached with it).
func (d *Documents) keys(ctx context.Context, inline json.RawMessage, uri string) (json.RawMessage, error) {
	switch {
	case len(inline) > 0 && uri != "":
		return nil, docErrorf("give jwks or jwks_uri, not both")
	case uri != "":
		body, _, err := d.get(ctx, uri, "jwks_uri") // cached with the document
		if err != nil {
			return nil, err
		}
		inline = body
	case len(inline) == 0:
		return nil, docErrorf("private_key_jwt needs the client's public keys in jwks or jwks_uri")
	}
	keys, err := usableJWKS(inline)
	if err != nil {
		return nil, docErrorf("%v", err)
	}
	return keys, nil
}

// sameHostHTTPS accepts an https redirect on the document's own host: the host vouches for it.
func sameHostHTTPS(raw, host string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Fragment != "" || strings.ContainsAny(raw, "#\\") {
		return false
	}
	return strings.EqualFold(u.Hostname(), host) && (RedirectPolicy{Hosts: []string{host}}).Check(raw) == nil
}

type blockedAddress struct{ addr string }

func (b *blockedAddress) Error() string { return "refusing to connect to internal address " + b.addr }

// checkAddress runs for every address the dialer is about to connect to, after DNS.
func (d *Documents) checkAddress(_, address string, _ syscall.RawConn) error {
	if d.AllowPrivateAddresses {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &blockedAddress{address}
	}
	if !PublicAddress(ap.Addr()) {
		return &blockedAddress{ap.Addr().String()}
	}
	return nil
}

var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach IPv4 internals
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds an IPv4 address
}

// PublicAddress reports whether a is a globally routable unicast address: not loopback,
// private, link-local (cloud metadata services live there), multicast, unspecified,
// carrier-grade NAT, documentation or reserved space, including IPv4 written as IPv6.
func PublicAddress(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// truncate bounds text taken from a document before it goes into an error page or the store.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
