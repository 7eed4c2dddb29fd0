// The upstream IdP of the interoperability suite: panva's `oidc-provider`, configured the way an
// operator configures a real OpenID provider for the facade (one confidential client whose only
// redirect URI is the facade's /callback), listening on one loopback port.
//
// Usage: node idp.mjs   with the environment
//   IDP_PORT            port to listen on (127.0.0.1 only)
//   IDP_CLIENT_ID       the facade's client id here
//   IDP_CLIENT_SECRET   its secret (the suite uses one with a space and a '+', to check the facade's
//                       RFC 6749 §2.3.1 form-urlencoding of Basic credentials against a strict decoder)
//   IDP_REDIRECT_URI    the facade's callback, <facade issuer>/callback
//
// It prints one line, `ready <issuer>`, once it listens, and stops on SIGTERM/SIGINT.
//
// The login and consent pages are oidc-provider's own development interactions ("devInteractions"):
// any login name and any password sign in; the login name becomes the account id (`sub`). The test's
// scripted browser submits those HTML forms exactly as a person's browser would.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`idp.mjs: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const port = Number.parseInt(required('IDP_PORT'), 10);
const issuer = `http://127.0.0.1:${port}`;

// A fresh RS256 key per run: the facade must fetch and cache this IdP's JWKS, not know it.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-1', alg: 'RS256', use: 'sig' };

const configuration = {
  clients: [{
    client_id: required('IDP_CLIENT_ID'),
    client_secret: required('IDP_CLIENT_SECRET'),
    redirect_uris: [required('IDP_REDIRECT_URI')],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    // The facade authenticates /token/revocation too (reuse detection revokes the upstream grant).
    revocation_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  // PKCE for every client, confidential ones included (OAuth 2.1; the facade always sends S256).
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // The facade reads the user's claims from the id_token only (it never calls /me), so put the
  // scope-requested claims in the id_token as many hosted IdPs do.
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub}@interop.example`,
          email_verified: true,
          name: `Interop ${sub}`,
          preferred_username: sub,
        };
      },
    };
  },
  // No `issueRefreshToken` override: oidc-provider's default is OIDC Core §11 to the letter
  // (`offline_access` is dropped from any request without prompt=consent, and only `offline_access`
  // earns a refresh token), so the facade must ask as a real §11 IdP wants it: its generic profile
  // sends offline_access with prompt=consent (PROXY_UPSTREAM_OFFLINE_ACCESS=scope+consent).
  // Every refresh rotates the upstream refresh token: the facade must store each successor.
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // No CORS anywhere: only the facade's server-side client and the scripted browser talk to it.
  clientBasedCORS: () => false,
};

const provider = new Provider(issuer, configuration);
// A login failure is printed, so a broken flow shows the IdP's reason in the facade test's output.
provider.on('server_error', (_ctx, error) => console.error('idp server_error:', error));
provider.on('grant.error', (_ctx, error) => console.error('idp grant.error:', error.message, error.error_description ?? ''));
// One line per token-endpoint grant and revocation: the suite counts them to see that a client's
// refresh at the facade really refreshed (and a detected reuse really revoked) the upstream grant.
provider.on('grant.success', (ctx) => console.log(`idp event grant ${ctx.oidc.params.grant_type}`));
provider.on('grant.revoked', () => console.log('idp event grant revoked'));

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
