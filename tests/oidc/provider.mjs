// A real OpenID provider for tests/oidc_sso.rs: the `oidc-provider` package (pinned in
// package.json) on 127.0.0.1 with a fresh RSA signing key, one confidential client and three
// accounts. Usage: node provider.mjs <redirect_uri> <client_secret>
// Prints one JSON line {"issuer": "..."} on standard output once it listens; runs until killed.
//
// The sign-in pages are the package's own development interactions (a login form and a consent
// form); accounts not listed below are refused by findAccount.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const [redirectUri, clientSecret] = process.argv.slice(2);
if (!redirectUri || !clientSecret) {
  console.error('usage: node provider.mjs <redirect_uri> <client_secret>');
  process.exit(2);
}

// Who exists at this identity provider, and the groups it says they are in.
const accounts = {
  alice: { name: 'Alice Admin', email: 'alice@corp.example', groups: ['dc-admins', 'staff'] },
  carol: { name: 'Carol Approver', email: 'carol@corp.example', groups: ['change-board'] },
  bob: { name: 'Bob Marketing', email: 'bob@corp.example', groups: ['marketing'] },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'lockstep',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomUUID()] },
    pkce: { required: () => true },
    // Put the scopes' claims (groups among them) into the ID token, as Entra ID and Keycloak
    // can be configured to do.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
      groups: ['groups'],
    },
    async findAccount(_ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, preferred_username: id, ...account };
        },
      };
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('provider error:', err));
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
