// One refresh by the official MCP TypeScript SDK's `auth()` against the facade, to see what the SDK does
// with the facade's answer (issue 17: the upstream error policy's status codes were chosen for this).
//
//   node ts_refresh_failure.mjs <mcp url> <client id> <refresh token>
//
// The provider holds an expired access token and the refresh token; every callback the SDK makes is
// recorded. It prints one JSON line: {"outcome", "events", "kept"} where `kept` says whether the SDK
// still holds the refresh token it started with.
import { auth } from "@modelcontextprotocol/sdk/client/auth.js";

const [serverUrl, clientId, refreshToken] = process.argv.slice(2);
const redirectUrl = "http://127.0.0.1:5599/callback";
const events = [];
let tokens = { access_token: "expired", token_type: "Bearer", refresh_token: refreshToken };

const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() { return { client_name: "ts refresh", redirect_uris: [redirectUrl] }; },
  clientInformation() { return { client_id: clientId }; },
  saveClientInformation() { events.push("saveClientInformation"); },
  tokens() { return tokens; },
  saveTokens(saved) { events.push("saveTokens"); tokens = saved; },
  redirectToAuthorization() { events.push("redirectToAuthorization"); },
  saveCodeVerifier() {},
  codeVerifier() { return "unused"; },
  invalidateCredentials(scope) {
    events.push(`invalidateCredentials:${scope}`);
    if (scope === "all" || scope === "tokens") tokens = undefined;
  },
};

let outcome;
try {
  outcome = await auth(provider, { serverUrl });
} catch (error) {
  outcome = `threw ${error.constructor.name}`;
}
process.stdout.write(JSON.stringify({ outcome, events, kept: tokens?.refresh_token === refreshToken }) + "\n");
