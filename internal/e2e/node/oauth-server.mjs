// A real, standards-compliant OAuth 2.0 / OpenID server for tokentray's
// end-to-end tests: panva's oidc-provider (OpenID Certified), configured with
// PKCE required, single-use rotating refresh tokens, revocation, short
// access tokens and the device authorization grant (RFC 8628). Its dev login and consent pages are clicked through by
// browser.mjs. Events go to stdout as JSON lines for the test to count.
//
// GET /__sync?id=N answers once no other request is being handled, after
// writing {"event":"sync","id":"N"}: a test that sees that line has seen
// the events of every request made before it, including one whose client was
// killed halfway (its bytes were already in this server's socket).
//
// Each call of its userinfo endpoint (/me), which the proxy's tests use as
// "the API", is an {"event":"api","url":…} line, in the order they came.
//
// usage: node oauth-server.mjs PORT REDIRECT_URI [ACCESS_TTL_SECONDS]
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, redirectUri, ttl = '30'] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'tokentray-e2e',
    client_secret: 'e2e-client-secret-0123456789',
    redirect_uris: [redirectUri],
    // The device grant too: `tokentray login --device` (RFC 8628).
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }, {
    // A client of a high-security profile (FAPI, the AT Protocol): its
    // tokens are DPoP-bound (RFC 9449), with the server's nonces, and its
    // authorization requests must be pushed first (RFC 9126).
    client_id: 'tokentray-e2e-dpop',
    client_secret: 'e2e-dpop-secret-0123456789',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
    dpop_bound_access_tokens: true,
    require_pushed_authorization_requests: true,
  }, {
    // A public client (PKCE, no secret): the README's minimal generic
    // config signs it in with nothing but the issuer.
    client_id: 'tokentray-e2e-public',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  }, {
    // A confidential client that authenticates only with HTTP Basic.
    client_id: 'tokentray-e2e-basic',
    client_secret: 'e2e-basic-secret-0123456789',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }, {
    // A service account (Procore's Developer Managed Service Accounts):
    // client credentials only, no browser, no refresh token.
    client_id: 'tokentray-e2e-service',
    client_secret: 'e2e-service-secret-9876543210',
    redirect_uris: [],
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { AccessToken: Number(ttl), ClientCredentials: Number(ttl), RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600, AuthorizationCode: 60 },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    // Proofs must carry the server's nonce (which it changes): a client
    // has to learn it from a refusal, without spending a refresh token.
    dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
    pushedAuthorizationRequests: { enabled: true },
  },
  scopes: ['openid', 'offline_access', 'api'],
  findAccount: async (ctx, id) => ({ accountId: id, async claims() { return { sub: id }; } }),
});
provider.proxy = false;

const emit = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, ...extra }) + '\n');
provider.on('grant.success', (ctx) => emit('grant.success', { grant_type: ctx.oidc.params.grant_type }));
provider.on('grant.error', (ctx, err) => emit('grant.error', { grant_type: ctx.oidc.params?.grant_type, error: err.error, description: err.error_description }));
provider.on('grant.revoked', () => emit('grant.revoked'));
provider.on('refresh_token.consumed', () => emit('refresh_token.consumed'));
provider.on('server_error', (ctx, err) => emit('server_error', { message: String(err) }));
provider.on('pushed_authorization_request.success', (ctx) => emit('par.success', { client_id: ctx.oidc.client?.clientId }));
provider.on('userinfo.error', (ctx, err) => emit('userinfo.error', { error: err.error, description: err.error_description, detail: err.error_detail }));

// Requests being handled, counted from the moment their headers are parsed
// until the provider has finished with them (also when the client is gone).
let inFlight = 0;
const handle = provider.callback();
const server = createServer(async (req, res) => {
  inFlight++;
  try {
    if (req.url.startsWith('/__sync')) {
      while (inFlight > 1) await new Promise((r) => setTimeout(r, 10));
      emit('sync', { id: new URL(req.url, issuer).searchParams.get('id') });
      res.end('ok\n');
      return;
    }
    if (req.url.startsWith('/me')) emit('api', { url: req.url, authorized: Boolean(req.headers.authorization), dpop: Boolean(req.headers.dpop) });
    await handle(req, res);
  } finally {
    inFlight--;
  }
});
server.listen(Number(port), '127.0.0.1', () => emit('listening', { issuer }));
