package entra

import (
	"fmt"
	"strings"
)

// Scope names come in two forms: short ("mcp-access", as Entra writes them in the scp claim)
// and full ("api://{client id}/mcp-access", as clients request them and as protected resource
// metadata advertises them). These helpers are the one place that converts between the two.

// ShortScope turns a configured scope into its short name. A full name must start with one of
// the app's identifier URIs; anything else is an error that names the scope.
func ShortScope(s string, identifierURIs []string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty scope")
	}
	if strings.Contains(s, "/") {
		for _, uri := range identifierURIs {
			if rest, ok := strings.CutPrefix(s, strings.TrimSuffix(uri, "/")+"/"); ok {
				s = rest
				break
			}
		}
		if strings.Contains(s, "/") {
			return "", fmt.Errorf("scope %q does not belong to this API (identifier URIs %s)", s, strings.Join(identifierURIs, ", "))
		}
	}
	if s == ".default" {
		return "", fmt.Errorf("scope %q cannot be required: Entra never puts .default in a token's scp claim", s)
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '\\' || r > '~' {
			return "", fmt.Errorf("scope %q contains a character Entra does not allow in scope names", s)
		}
	}
	return s, nil
}

// ShortScopes converts a list; see ShortScope.
func ShortScopes(scopes, identifierURIs []string) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		short, err := ShortScope(s, identifierURIs)
		if err != nil {
			return nil, err
		}
		out = append(out, short)
	}
	return out, nil
}

// FullScope is the form clients request: identifierURI + "/" + short name.
func FullScope(identifierURI, short string) string {
	return strings.TrimSuffix(identifierURI, "/") + "/" + short
}

// FullScopes converts a list of short names; see FullScope.
func FullScopes(identifierURI string, shorts []string) []string {
	out := make([]string, 0, len(shorts))
	for _, s := range shorts {
		out = append(out, FullScope(identifierURI, s))
	}
	return out
}
