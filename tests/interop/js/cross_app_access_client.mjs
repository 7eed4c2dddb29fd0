// The MCP TypeScript SDK v2 client's Enterprise-Managed Authorization (SEP-990) provider against the facade.
//
//   ID_TOKEN=… IDP_CLIENT_ID=… IDP_CLIENT_SECRET=… CLIENT_ID=… CLIENT_SECRET=… \
//   node cross_app_access_client.mjs <mcp url> <facade issuer> <enterprise idp issuer>
//
// `CrossAppAccessProvider` gets the 401 from the MCP server, discovers the facade through RFC 9728,
// asks its assertion callback for an ID-JAG (here the SDK's own `discoverAndRequestJwtAuthGrant`: RFC 8693
// token exchange of the user's id_token at the enterprise IdP) and presents it with the jwt-bearer grant.
// The script calls the `whoami` tool and prints {"result": …, "assertions": […], "exchanges": […]}.
import {
  Client,
  CrossAppAccessProvider,
  StreamableHTTPClientTransport,
  discoverAndRequestJwtAuthGrant,
} from "@modelcontextprotocol/client";

const [mcpUrl, facadeIssuer, idpUrl] = process.argv.slice(2);
const env = process.env;
const exchanges = [];
const assertions = [];

const recordingFetch = async (url, init) => {
  const response = await fetch(url, init);
  const body = init?.body instanceof URLSearchParams ? init.body : new URLSearchParams(typeof init?.body === "string" ? init.body : "");
  const grant = body.get("grant_type");
  exchanges.push(`${init?.method ?? "GET"} ${url}${grant ? ` (${grant})` : ""} -> ${response.status}`);
  return response;
};

const provider = new CrossAppAccessProvider({
  assertion: async (ctx) => {
    assertions.push({ audience: ctx.authorizationServerUrl, resource: ctx.resourceUrl, scope: ctx.scope ?? null });
    const grant = await discoverAndRequestJwtAuthGrant({
      idpUrl, audience: ctx.authorizationServerUrl, resource: ctx.resourceUrl, idToken: env.ID_TOKEN,
      clientId: env.IDP_CLIENT_ID, clientSecret: env.IDP_CLIENT_SECRET, scope: env.SCOPE, fetchFn: ctx.fetchFn,
    });
    return grant.jwtAuthGrant;
  },
  clientId: env.CLIENT_ID,
  clientSecret: env.CLIENT_SECRET,
  clientName: "MCP TypeScript SDK v2 cross-app access interop",
  expectedIssuer: facadeIssuer,
  fetchFn: recordingFetch,
});

try {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: "cross-app-access-interop", version: "1.0.0" });
  await client.connect(transport);
  const result = await client.callTool({ name: "whoami", arguments: {} });
  process.stdout.write(JSON.stringify({ result, assertions, exchanges, tokens: provider.tokens() ?? null }) + "\n");
  await client.close();
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error?.stack ?? error), assertions, exchanges }) + "\n");
  process.exitCode = 1;
}
