// The official TypeScript MCP SDK client against `entramcp dev --mode proxy`: discovery (RFC 9728
// then RFC 8414), Dynamic Client Registration, PKCE with resource, our consent page and the
// emulator's sign-in page (driven over HTTP as a browser would), the code exchange, a tool call,
// and a refresh after the access token is spoiled. Prints one JSON line for the Go test.
//
// With CIMD_URL the client identifies itself by a Client ID Metadata Document at that URL
// instead of registering.
//
// usage: node ts-sdk.mjs MCP_URL USER [CIMD_URL]   (NODE_EXTRA_CA_CERTS must name the emulator's CA)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { MemoryProvider, redirectUrl } from "./lib.mjs";

const [mcpURL, user = "alice", cimdURL] = process.argv.slice(2);
// A browser, reduced to what the flow needs: cookies per host and manual redirects.
const jar = new Map();
async function visit(url, init = {}) {
  const u = new URL(url);
  const headers = { ...(init.headers || {}) };
  if (jar.has(u.host)) headers.cookie = jar.get(u.host);
  const resp = await fetch(u, { ...init, headers, redirect: "manual" });
  const set = resp.headers.getSetCookie();
  if (set.length) jar.set(u.host, set.map((c) => c.split(";")[0]).join("; "));
  return resp;
}
const form = (fields) => ({ method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString() });
const fields = (html, re) => Object.fromEntries([...html.matchAll(re)].map((m) => [m[1], m[2].replaceAll("&amp;", "&")]));

async function signIn(authURL) {
  let resp = await visit(authURL);
  const consent = await resp.text();
  if (resp.status !== 200) throw new Error(`consent page: ${resp.status} ${consent}`);
  resp = await visit(new URL("/consent", authURL), form({ ...fields(consent, /name="(authz|csrf)" value="([^"]+)"/g), decision: "approve" }));
  let next = resp.headers.get("location");
  resp = await visit(next); // Entra's (the emulator's) sign-in page
  const page = await resp.text();
  const entra = new URL(next);
  resp = await visit(entra.origin + entra.pathname, form({ ...fields(page, /name="([a-z_]+)" value="([^"]*)"/g), emu_user: user }));
  next = resp.headers.get("location"); // our /auth/callback
  resp = await visit(next);
  const back = new URL(resp.headers.get("location"));
  if (!back.href.startsWith(redirectUrl)) throw new Error(`expected the client's redirect, got ${back.href}`);
  if (back.searchParams.get("error")) throw new Error(`sign-in error: ${back.searchParams.get("error_description")}`);
  return back.searchParams.get("code");
}

const provider = new MemoryProvider(undefined, cimdURL);
const connect = async () => {
  const client = new Client({ name: "entramcp-e2e", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider }));
  return client;
};

const first = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
try {
  await new Client({ name: "entramcp-e2e", version: "1.0.0" }).connect(first);
  throw new Error("connected without signing in");
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
const authURL = provider.authURL;
await first.finishAuth(await signIn(authURL));
let client = await connect();
const tools = (await client.listTools()).tools.map((t) => t.name);
const who = await client.callTool({ name: "whoami", arguments: {} });
const firstToken = provider.saved.tokens.access_token;
await client.close();

// Spoil the access token: the SDK must get a 401, refresh, and carry on.
provider.saved.tokens = { ...provider.saved.tokens, access_token: firstToken.slice(0, -4) + "AAAA" };
client = await connect();
const again = await client.callTool({ name: "whoami", arguments: {} });
await client.close();

console.log(JSON.stringify({
  client_id: provider.saved.client?.client_id ?? authURL.searchParams.get("client_id"),
  pkce_method: authURL.searchParams.get("code_challenge_method"),
  resource: authURL.searchParams.get("resource"),
  tools,
  oid: who.structuredContent?.object_id,
  refreshed: provider.saved.tokens.access_token !== firstToken,
  oid_after_refresh: again.structuredContent?.object_id,
}));
