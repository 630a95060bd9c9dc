// Shared by the e2e clients: an in-memory OAuth client provider for the TypeScript MCP SDK.
export const redirectUrl = "http://127.0.0.1:9/cb"; // never contacted: the "browser" stops there

export class MemoryProvider {
  // clientMetadataUrl (optional): an https URL serving this client's metadata document (CIMD);
  // the SDK then uses it as the client_id instead of registering.
  constructor(name = "TypeScript SDK e2e", clientMetadataUrl = undefined) { this.saved = {}; this.name = name; this.clientMetadataUrl = clientMetadataUrl; }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return { client_name: this.name, redirect_uris: [redirectUrl], grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"], token_endpoint_auth_method: "none" };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(c) { this.saved.client = c; }
  tokens() { return this.saved.tokens; }
  saveTokens(t) { this.saved.tokens = t; }
  redirectToAuthorization(u) { this.authURL = new URL(u); }
  saveCodeVerifier(v) { this.saved.verifier = v; }
  codeVerifier() { return this.saved.verifier; }
}
