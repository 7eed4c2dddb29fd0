// oauth4webapi's `PrivateKeyJwt` client authentication (RFC 7523 §2.2) against the facade, as a client
// whose client_id is the URL of its metadata document (CIMD) declaring private_key_jwt and a jwks_uri.
// Run by tests/interop/test_oauth4webapi_private_key_jwt.py, which serves the document and the key set.
//
// Environment: ISSUER (the facade), CLIENT_ID (the document URL), RESOURCE, REDIRECT_URI, PRIVATE_JWK
// (the client's RSA private key as a JWK, with its kid).
//
// The conversation with the test is the one of oauth4webapi_client.mjs: JSON lines, `authorize` hands
// the test the URL for its scripted browser and reads back where the browser ended.

import { createInterface } from 'node:readline';
import process from 'node:process';
import { readFileSync } from 'node:fs';

import * as oauth from 'oauth4webapi';

const VERSION = JSON.parse(readFileSync(new URL('./node_modules/oauth4webapi/package.json', import.meta.url))).version;
const CLIENT = `oauth4webapi ${VERSION} (PrivateKeyJwt)`;

function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function required(name) {
  const value = process.env[name];
  if (!value) {
    emit({ event: 'failed', client: CLIENT, step: 'start', error: `${name} is not set` });
    process.exit(2);
  }
  return value;
}

const ISSUER = new URL(required('ISSUER'));
const CLIENT_ID = required('CLIENT_ID');
const RESOURCE = new URL(required('RESOURCE'));
const REDIRECT_URI = required('REDIRECT_URI');
const PRIVATE_JWK = JSON.parse(required('PRIVATE_JWK'));

let currentStep = 'start';
let lastExchange = null;

async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  const body = await response.clone().text();
  lastExchange = {
    step: currentStep,
    request: { method: init?.method ?? 'GET', url: String(url) },
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
    emit({
      event: 'failed', client: CLIENT, step: name, error: `${error?.name ?? 'Error'}: ${error?.message ?? error}`,
      code: error?.code, answer: lastExchange?.step === name ? lastExchange : undefined,
    });
    throw new StepFailure(name);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function browse(url) {
  emit({ event: 'authorize', url: url.href });
  const { value, done } = await lines.next();
  check(!done && value, 'the test closed stdin instead of sending the callback URL');
  return new URL(value.trim());
}

async function main() {
  const facts = {};
  const as = await step('discovery (RFC 8414)', async () => {
    const response = await oauth.discoveryRequest(ISSUER, { ...http, algorithm: 'oauth2' });
    return oauth.processDiscoveryResponse(ISSUER, response);
  });
  await step('metadata advertises private_key_jwt', async () => {
    check(as.token_endpoint_auth_methods_supported?.includes('private_key_jwt'),
      `token_endpoint_auth_methods_supported: ${as.token_endpoint_auth_methods_supported}`);
    check(as.token_endpoint_auth_signing_alg_values_supported?.includes('RS256'),
      `token_endpoint_auth_signing_alg_values_supported: ${as.token_endpoint_auth_signing_alg_values_supported}`);
    check(as.revocation_endpoint_auth_methods_supported?.includes('private_key_jwt'),
      `revocation_endpoint_auth_methods_supported: ${as.revocation_endpoint_auth_methods_supported}`);
  });
  const key = await crypto.subtle.importKey(
    'jwk', PRIVATE_JWK, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  const clientAuth = oauth.PrivateKeyJwt({ key, kid: PRIVATE_JWK.kid });
  const client = { client_id: CLIENT_ID, token_endpoint_auth_method: 'private_key_jwt' };

  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const callbackUrl = await step('authorization (browser)', async () => {
    const url = new URL(as.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: 'openid offline_access',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
      state, nonce, resource: RESOURCE.href,
    }).toString();
    return browse(url);
  });
  const params = await step('validateAuthResponse', async () => oauth.validateAuthResponse(as, client, callbackUrl, state));
  const tokens = await step('authorization code grant with PrivateKeyJwt', async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as, client, clientAuth, params, REDIRECT_URI, codeVerifier,
      { ...http, additionalParameters: { resource: RESOURCE.href } });
    return oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true });
  });
  facts.sub = oauth.getValidatedIdTokenClaims(tokens).sub;
  facts.aud = oauth.getValidatedIdTokenClaims(tokens).aud;
  const refreshed = await step('refresh with PrivateKeyJwt', async () => {
    const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, {
      ...http, additionalParameters: { resource: RESOURCE.href } });
    return oauth.processRefreshTokenResponse(as, client, response);
  });
  facts.without_key = await step('refresh without authentication is invalid_client', async () => {
    try {
      const response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshed.refresh_token, http);
      await oauth.processRefreshTokenResponse(as, client, response);
    } catch (error) {
      check(error instanceof oauth.ResponseBodyError, `expected an OAuth error body, got ${error}`);
      check(error.status === 401, `expected HTTP 401, got ${error.status}`);
      return error.error;
    }
    throw new Error('a refresh without the client assertion was accepted');
  });
  await step('revocation with PrivateKeyJwt', async () => {
    const response = await oauth.revocationRequest(as, client, clientAuth, refreshed.refresh_token, http);
    await oauth.processRevocationResponse(response);
  });
  facts.after_revocation = await step('refresh after revocation is invalid_grant', async () => {
    try {
      const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshed.refresh_token, http);
      await oauth.processRefreshTokenResponse(as, client, response);
    } catch (error) {
      check(error instanceof oauth.ResponseBodyError, `expected an OAuth error body, got ${error}`);
      return error.error;
    }
    throw new Error('the revoked refresh token still works');
  });
  emit({ event: 'done', facts });
}

main().then(() => process.exit(0), (error) => {
  if (!(error instanceof StepFailure)) {
    emit({ event: 'failed', client: CLIENT, step: currentStep, error: String(error?.stack ?? error) });
  }
  process.exit(1);
});
