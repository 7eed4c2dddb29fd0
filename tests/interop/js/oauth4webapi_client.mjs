// A strict OAuth 2.1 / OpenID Connect client against the facade: panva's `oauth4webapi`, which checks
// what most clients let slide (exact issuer and resource strings, RFC 9207 `iss`, id_token claims and
// signature, content types, status codes). Run by tests/interop/test_oauth4webapi.py.
//
// Environment: RESOURCE (the protected MCP endpoint's URL), REDIRECT_URI (a loopback URL nobody
// listens on: the test's scripted browser stops there).
//
// The conversation with the test is JSON lines:
//   stdout  {"event":"step","name":...}        each step as it starts (a timeout names it)
//   stdout  {"event":"authorize","url":...}    stdin  the URL the browser was finally sent to
//   stdout  {"event":"done","facts":{...}}     exit 0
//   stdout  {"event":"failed","client":...,"step":...,"error":...,"answer":{status,body,...}}   exit 1
// A failure names this client, the step, and the last HTTP answer received in that step.

import { Buffer } from 'node:buffer';
import { createInterface } from 'node:readline';
import process from 'node:process';
import { readFileSync } from 'node:fs';

import * as oauth from 'oauth4webapi';

const VERSION = JSON.parse(readFileSync(new URL('./node_modules/oauth4webapi/package.json', import.meta.url))).version;
const CLIENT = `oauth4webapi ${VERSION}`;
// The token-endpoint secret of the client_secret_basic step: a space and a '+' must reach the server
// form-urlencoded ('+' and '%2B'), RFC 6749 §2.3.1, and decode back to the same two characters.
const BASIC_SECRET = 'a secret+with plus';

const RESOURCE = new URL(required('RESOURCE'));
const REDIRECT_URI = required('REDIRECT_URI');

function required(name) {
  const value = process.env[name];
  if (!value) {
    emit({ event: 'failed', client: CLIENT, step: 'start', error: `${name} is not set` });
    process.exit(2);
  }
  return value;
}

function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// -- every HTTP answer of the current step, for the failure report ---------------------------------
let currentStep = 'start';
let lastExchange = null;

/** `fetch` that remembers the request headers and the answer (status, headers, body) of the step. */
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  const body = await response.clone().text();
  lastExchange = {
    step: currentStep,
    request: { method: init?.method ?? 'GET', url: String(url), headers: Object.fromEntries(new Headers(init?.headers)) },
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: body.slice(0, 2000),
  };
  return response;
}

const http = { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: recordingFetch };

class StepFailure extends Error {}

async function step(name, action) {
  currentStep = name;
  lastExchange = null;
  emit({ event: 'step', name });
  try {
    return await action();
  } catch (error) {
    const answer = lastExchange?.step === name ? lastExchange : undefined;
    emit({
      event: 'failed',
      client: CLIENT,
      step: name,
      error: `${error?.name ?? 'Error'}: ${error?.message ?? error}`,
      code: error?.code,
      cause: describeCause(error?.cause),
      answer,
    });
    throw new StepFailure(name);
  }
}

function describeCause(cause) {
  if (cause === undefined) return undefined;
  if (cause instanceof Response) return { status: cause.status };
  try {
    return JSON.parse(JSON.stringify(cause));
  } catch {
    return String(cause);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// -- the browser leg is the test's: hand it the URL, read back where the browser ended up ----------
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

async function browse(url) {
  emit({ event: 'authorize', url: url.href });
  const { value, done } = await lines.next();
  check(!done && value, 'the test closed stdin instead of sending the callback URL');
  return new URL(value.trim());
}

async function refresh(as, client, clientAuth, refreshToken) {
  const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshToken, {
    ...http, additionalParameters: { resource: RESOURCE.href },
  });
  return oauth.processRefreshTokenResponse(as, client, response);
}

/** Expect the grant to be refused with a standard `invalid_grant` JSON error body. */
async function expectInvalidGrant(as, client, refreshToken, what) {
  try {
    await refresh(as, client, oauth.None(), refreshToken);
  } catch (error) {
    check(error instanceof oauth.ResponseBodyError, `${what}: expected an OAuth error body, got ${error}`);
    check(error.status === 400 && error.error === 'invalid_grant',
      `${what}: expected HTTP 400 invalid_grant, got HTTP ${error.status} ${error.error}`);
    return error.error;
  }
  throw new Error(`${what} was accepted: a new token pair was issued`);
}

async function main() {
  const facts = {};

  // 1. The MCP endpoint's 401 names the protected resource metadata (RFC 9728 §5.1).
  const metadataUrl = await step('401 from the MCP endpoint', async () => {
    const response = await recordingFetch(RESOURCE, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    check(response.status === 401, `expected HTTP 401 without a token, got ${response.status}`);
    const challenge = response.headers.get('www-authenticate') ?? '';
    const match = /^Bearer\b.*\bresource_metadata="([^"]+)"/i.exec(challenge);
    check(match, `no Bearer resource_metadata in WWW-Authenticate: ${JSON.stringify(challenge)}`);
    return new URL(match[1]);
  });

  // 2. RFC 9728: `resource` must be the MCP URL exactly; the first authorization server is ours.
  const prm = await step('protected resource metadata', async () => {
    const response = await recordingFetch(metadataUrl, { headers: { accept: 'application/json' }, redirect: 'manual' });
    const document = await oauth.processResourceDiscoveryResponse(RESOURCE, response);
    check(Array.isArray(document.authorization_servers) && document.authorization_servers.length > 0,
      'authorization_servers is missing or empty');
    return document;
  });
  const issuer = new URL(prm.authorization_servers[0]);
  facts.issuer = prm.authorization_servers[0];

  // 3. Discovery under both names (RFC 8414 and OIDC Discovery), issuer compared exactly.
  const as = await step('discovery (RFC 8414 oauth-authorization-server)', async () => {
    const response = await oauth.discoveryRequest(issuer, { ...http, algorithm: 'oauth2' });
    return oauth.processDiscoveryResponse(issuer, response);
  });
  await step('discovery (OIDC openid-configuration)', async () => {
    const response = await oauth.discoveryRequest(issuer, { ...http, algorithm: 'oidc' });
    const oidc = await oauth.processDiscoveryResponse(issuer, response);
    check(JSON.stringify(oidc) === JSON.stringify(as), 'the two metadata documents differ');
  });
  await step('metadata requirements', async () => {
    check(as.authorization_response_iss_parameter_supported === true, 'RFC 9207 iss is not advertised');
    check(as.code_challenge_methods_supported?.includes('S256'), 'S256 is not advertised');
    check(typeof as.jwks_uri === 'string', 'no jwks_uri');
    check(typeof as.registration_endpoint === 'string', 'no registration_endpoint');
  });

  // 4. RFC 7591 dynamic registration (201, no nulls: oauth4webapi checks both).
  const client = await step('dynamic client registration', async () => {
    const response = await oauth.dynamicClientRegistrationRequest(as, {
      redirect_uris: [REDIRECT_URI],
      client_name: 'oauth4webapi interop',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }, http);
    return oauth.processDynamicClientRegistrationResponse(response);
  });

  // 5. Authorization request: PKCE S256, state, nonce, RFC 8707 resource.
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const callbackUrl = await step('authorization (browser)', async () => {
    const url = new URL(as.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT_URI,
      scope: 'openid offline_access email profile',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      resource: RESOURCE.href,
    }).toString();
    return browse(url);
  });
  const params = await step('validateAuthResponse (state, RFC 9207 iss)', async () => {
    check(callbackUrl.href.startsWith(REDIRECT_URI), `the browser ended at ${callbackUrl.href}`);
    return oauth.validateAuthResponse(as, client, callbackUrl, state);
  });

  // 6. Code exchange; the id_token's claims (iss, aud, azp, nonce, exp, iat, sub) and its signature
  //    against the facade's jwks_uri; the access token checked as an RFC 9068 resource server would.
  const tokens = await step('authorization code grant + id_token checks', async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as, client, oauth.None(), params, REDIRECT_URI, codeVerifier,
      { ...http, additionalParameters: { resource: RESOURCE.href } },
    );
    const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
      expectedNonce: nonce, requireIdToken: true,
    });
    await oauth.validateApplicationLevelSignature(as, response, http);
    return result;
  });
  const idClaims = oauth.getValidatedIdTokenClaims(tokens);
  facts.id_token = { iss: idClaims.iss, aud: idClaims.aud, sub: idClaims.sub, email: idClaims.email };
  facts.scope = tokens.scope;
  await step('access token as a resource server sees it (RFC 9068)', async () => {
    check(typeof tokens.refresh_token === 'string', 'no refresh_token although offline_access was granted');
    const request = new Request(RESOURCE, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const claims = await oauth.validateJwtAccessToken(as, request, RESOURCE.href, http);
    check(claims.client_id === client.client_id, `client_id claim ${claims.client_id}`);
    check(claims.sub === idClaims.sub, 'the access token and id_token name different subjects');
  });

  // 7. Refresh: a new refresh token every time (rotation).
  const first = tokens.refresh_token;
  const second = await step('refresh (rotation)', async () => {
    const result = await refresh(as, client, oauth.None(), first);
    check(typeof result.refresh_token === 'string' && result.refresh_token !== first,
      'the refresh token was not rotated');
    return result.refresh_token;
  });

  // 8. client_secret_basic with a secret holding a space and a '+': oauth4webapi form-urlencodes
  //    each half (RFC 6749 §2.3.1); the facade must decode it, and accept Basic from a public client.
  const third = await step('refresh with client_secret_basic (secret with a space and a +)', async () => {
    const result = await refresh(as, client, oauth.ClientSecretBasic(BASIC_SECRET), second);
    const header = lastExchange?.request.headers.authorization ?? '';
    const decoded = Buffer.from(header.replace(/^Basic /, ''), 'base64').toString();
    check(decoded.endsWith(':a+secret%2Bwith+plus'), `unexpected Basic credentials sent: ${decoded}`);
    check(result.refresh_token !== second, 'the refresh token was not rotated');
    return result.refresh_token;
  });
  facts.basic_credentials = 'form-urlencoded';

  // 9. Replaying the first refresh token after its successor was used is reuse (RFC 9700 §4.14.2):
  //    refused, and the whole family revoked, so the newest token dies too.
  facts.replay = await step('replay of a rotated refresh token', () =>
    expectInvalidGrant(as, client, first, 'the replay of the first refresh token'));
  await step('family revoked after the replay', () =>
    expectInvalidGrant(as, client, third, 'the newest refresh token after reuse detection'));

  emit({ event: 'done', client: CLIENT, facts });
}

try {
  await main();
  stdin.close();
  process.exit(0);
} catch (error) {
  if (!(error instanceof StepFailure)) {
    emit({ event: 'failed', client: CLIENT, step: currentStep, error: String(error?.stack ?? error) });
  }
  stdin.close();
  process.exit(1);
}
