package oauthproxy

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// DefaultRedirectHosts are the hosted MCP clients whose https callbacks are allowed without
// configuration (ENTRA-FACTS section 8). ENTRAMCP_ALLOWED_REDIRECTS adds hosts or exact URLs.
var DefaultRedirectHosts = []string{"vscode.dev", "insiders.vscode.dev", "claude.ai", "chatgpt.com", "teams.microsoft.com"}

// RedirectPolicy decides which redirect URIs a client may register.
type RedirectPolicy struct {
	// Hosts are https hosts allowed (exact, case-insensitive).
	Hosts []string
	// URLs are exact https URLs allowed besides Hosts.
	URLs []string
}

var errRedirect = errors.New("invalid redirect_uri")

// Check validates one redirect URI for registration:
//   - http only on a loopback host (127.0.0.1, [::1], localhost), any port (RFC 8252);
//   - https only to an allowed host or URL;
//   - a private-use scheme in reverse-domain form (com.example.app:/cb, RFC 8252 7.1);
//   - never javascript:, data:, file: and the like, userinfo, a fragment, dot-segments,
//     backslashes or control characters.
func (p RedirectPolicy) Check(raw string) error {
	if raw == "" || len(raw) > 2000 {
		return errRedirectf("must be 1 to 2000 characters")
	}
	for _, r := range raw {
		if r < 0x21 || r == 0x7f || r == '\\' {
			return errRedirectf("contains a space, control character or backslash")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return errRedirectf("is not an absolute URI")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errRedirectf("must not contain a fragment")
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return errRedirectf("must not contain user information")
	}
	lower := strings.ToLower(u.EscapedPath())
	for _, seg := range strings.Split(lower, "/") {
		if seg == "." || seg == ".." || seg == "%2e" || seg == "%2e%2e" || seg == ".%2e" || seg == "%2e." {
			return errRedirectf("must not contain dot-segments")
		}
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errRedirectf("http is allowed only for loopback hosts (127.0.0.1, [::1], localhost)")
		}
		return nil
	case "https":
		host := strings.ToLower(u.Hostname())
		for _, h := range p.Hosts {
			if strings.EqualFold(h, host) && (u.Port() == "" || u.Port() == "443") {
				return nil
			}
		}
		for _, x := range p.URLs {
			if x == raw {
				return nil
			}
		}
		return errRedirectf("https host " + host + " is not in ENTRAMCP_ALLOWED_REDIRECTS")
	case "javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss":
		return errRedirectf("scheme " + scheme + " is not allowed")
	default:
		if !strings.Contains(scheme, ".") {
			return errRedirectf("private-use schemes must be in reverse-domain form, such as com.example.app:/callback")
		}
		return nil
	}
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func errRedirectf(msg string) error { return &redirectError{msg} }

type redirectError struct{ msg string }

func (e *redirectError) Error() string { return "redirect_uri " + e.msg }
func (e *redirectError) Unwrap() error { return errRedirect }

// MatchRedirect reports whether a redirect_uri sent to /authorize matches a registered one:
// exactly, or for loopback http registrations on any port (RFC 8252 7.3).
func MatchRedirect(registered []string, requested string) bool {
	for _, r := range registered {
		if r == requested {
			return true
		}
		a, err1 := url.Parse(r)
		b, err2 := url.Parse(requested)
		if err1 != nil || err2 != nil || a.Scheme != "http" || b.Scheme != "http" || !isLoopbackHost(a.Hostname()) {
			continue
		}
		if a.Hostname() == b.Hostname() && a.EscapedPath() == b.EscapedPath() && a.RawQuery == b.RawQuery && b.User == nil && b.Fragment == "" {
			return true
		}
	}
	return false
}
