// A real browser (Debian's Chromium through playwright-core) as the user agent of the
// TypeScript MCP SDK client against `entramcp dev --mode proxy`: the SDK registers and builds
// the authorization URL; Chromium shows our consent page, the user clicks "Continue", picks the
// account on the emulator's sign-in page, and the redirect back to the client is caught. Also
// checks that the consent page refuses to be framed (clickjacking). Prints one JSON line.
//
// usage: node chromium.mjs MCP_URL USER   (NODE_EXTRA_CA_CERTS names the emulator's CA;
// CHROMIUM overrides /usr/bin/chromium)
import { chromium } from "playwright-core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { MemoryProvider, redirectUrl } from "./lib.mjs";

const [mcpURL, user = "alice"] = process.argv.slice(2);
const provider = new MemoryProvider("Chromium e2e");
const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
try {
  await new Client({ name: "entramcp-chromium-e2e", version: "1.0.0" }).connect(transport);
  throw new Error("connected without signing in");
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const result = {};
try {
  // The emulator's CA is not in Chromium's store; only the emulator is https here.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  let back;
  await context.route(redirectUrl + "**", (route) => { back = new URL(route.request().url()); route.fulfill({ status: 200, body: "back in the client" }); });
  const page = await context.newPage();
  const consent = await page.goto(provider.authURL.href);
  result.consent_status = consent.status();
  result.csp = consent.headers()["content-security-policy"];
  result.consent_names_client = (await page.textContent("h1")).includes("Chromium e2e");
  await page.click("#approve");
  await page.click(`#user-${user}`);
  await page.waitForURL((u) => u.href.startsWith(redirectUrl), { timeout: 15000 });
  if (!back || !back.searchParams.get("code")) throw new Error(`no code came back: ${back}`);
  result.iss = back.searchParams.get("iss");
  await transport.finishAuth(back.searchParams.get("code"));

  // Clickjacking: a page that frames the consent page gets nothing clickable.
  const attacker = await context.newPage();
  await attacker.setContent(`<iframe src="${provider.authURL.href}" width="600" height="400"></iframe>`);
  await attacker.waitForTimeout(1000);
  const frame = attacker.frames().find((f) => f !== attacker.mainFrame());
  result.framed = frame ? (await frame.locator("#approve").count()) > 0 : false;
} finally {
  await browser.close();
}

const client = new Client({ name: "entramcp-chromium-e2e", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider }));
const who = await client.callTool({ name: "whoami", arguments: {} });
result.oid = who.structuredContent?.object_id;
await client.close();
console.log(JSON.stringify(result));
