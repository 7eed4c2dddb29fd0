// The official MCP TypeScript SDK client, driven by the Python test over stdin/stdout (JSON lines).
//
//   node mcp_ts_client.mjs <mcp url> <redirect url> [client metadata document url]
//
// It connects to the protected MCP endpoint; the SDK discovers the facade, identifies itself with the
// URL client id (when given and the facade advertises CIMD) or registers (DCR), and asks to send the
// browser to /authorize: this script prints {"authorize": url} and reads the redirect URL the test's
// scripted browser reached. It then finishes the flow, calls the `whoami` tool, forces one refresh by
// forgetting the access token, calls it again, and prints {"result": ..., "client": ..., "tokens": ...}.
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [mcpUrl, redirectUrl, metadataUrl] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const exchanges = [];

class MemoryProvider {
  constructor() {
    this.info = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.pending = undefined;
    if (metadataUrl) this.clientMetadataUrl = metadataUrl;
  }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return { client_name: "MCP TypeScript SDK interop", redirect_uris: [redirectUrl],
             grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
             token_endpoint_auth_method: "none" };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  redirectToAuthorization(url) { this.pending = url.toString(); }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
  invalidateCredentials(scope) { exchanges.push(`invalidateCredentials(${scope})`); }
}

const recordingFetch = async (url, init) => {
  const response = await fetch(url, init);
  exchanges.push(`${init?.method ?? "GET"} ${url} -> ${response.status}`);
  return response;
};

async function connect(provider) {
  const client = new Client({ name: "ts-interop", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: recordingFetch });
  try {
    await client.connect(transport);
    return client;
  } catch (error) {
    if (!(error instanceof UnauthorizedError) || !provider.pending) throw error;
    say({ authorize: provider.pending });
    const { value } = await lines.next();
    const code = new URL(value.trim()).searchParams.get("code");
    await transport.finishAuth(code);
    provider.pending = undefined;
    const again = new Client({ name: "ts-interop", version: "1.0.0" });
    await again.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: recordingFetch }));
    return again;
  }
}

try {
  const provider = new MemoryProvider();
  const client = await connect(provider);
  const first = await client.callTool({ name: "whoami", arguments: {} });
  const firstTokens = provider.saved;
  // Make the SDK refresh: an access token it no longer has, a refresh token it keeps.
  provider.saved = { ...provider.saved, access_token: "expired-on-purpose" };
  const second = await connect(provider).then((c) => c.callTool({ name: "whoami", arguments: {} }));
  say({ result: first, after_refresh: second, client: provider.info,
        refreshed: provider.saved.refresh_token !== firstTokens.refresh_token, exchanges });
  process.exit(0);
} catch (error) {
  say({ error: String(error?.stack ?? error), exchanges });
  process.exit(1);
}
