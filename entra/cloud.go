package entra

import "strings"

// Cloud describes one Entra national cloud: where users sign in, which host issues v1 tokens,
// where Microsoft Graph lives, and the audience of managed-identity tokens used as federated
// credentials.
type Cloud struct {
	Name                  string
	AuthorityHost         string
	V1IssuerHost          string
	GraphURL              string
	TokenExchangeAudience string
}

// The national clouds entramcp knows by authority host.
var (
	PublicCloud = Cloud{Name: "AzurePublic", AuthorityHost: "login.microsoftonline.com", V1IssuerHost: "sts.windows.net",
		GraphURL: "https://graph.microsoft.com", TokenExchangeAudience: "api://AzureADTokenExchange"}
	USGovernmentCloud = Cloud{Name: "AzureUSGovernment", AuthorityHost: "login.microsoftonline.us", V1IssuerHost: "sts.windows.net",
		GraphURL: "https://graph.microsoft.us", TokenExchangeAudience: "api://AzureADTokenExchangeUSGov"}
	ChinaCloud = Cloud{Name: "AzureChina", AuthorityHost: "login.partner.microsoftonline.cn", V1IssuerHost: "sts.chinacloudapi.cn",
		GraphURL: "https://microsoftgraph.chinacloudapi.cn", TokenExchangeAudience: "api://AzureADTokenExchangeChina"}
)

// CloudForHost returns the cloud of an authority host. An unknown host (a test emulator, an
// Entra-compatible stand-in) gets the public cloud's conventions under its own host.
func CloudForHost(host string) Cloud {
	for _, c := range []Cloud{PublicCloud, USGovernmentCloud, ChinaCloud} {
		if strings.EqualFold(c.AuthorityHost, host) {
			return c
		}
	}
	c := PublicCloud
	c.Name, c.AuthorityHost = "Custom", host
	return c
}

// GraphAppID is Microsoft Graph's application id in every cloud.
const GraphAppID = "00000003-0000-0000-c000-000000000000"

// graphAudiences are the aud values of Microsoft Graph tokens in every cloud. A token with one
// of them is refused with a description that names Graph: the classic confused-deputy mistake
// is to send the API a token meant for Graph.
var graphAudiences = []string{GraphAppID, "https://graph.microsoft.com", "https://graph.microsoft.com/",
	"https://graph.microsoft.us", "https://dod-graph.microsoft.us", "https://microsoftgraph.chinacloudapi.cn",
	"https://canary.graph.microsoft.com", "https://graph.windows.net", "https://graph.windows.net/"}

func isGraphAudience(aud string) bool {
	for _, g := range graphAudiences {
		if strings.EqualFold(g, aud) {
			return true
		}
	}
	return false
}
