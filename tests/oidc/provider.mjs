// A real OpenID provider for tests/oidc_sso.rs: the `oidc-provider` package (pinned in
// package.json) on 127.0.0.1 with a fresh RSA signing key, one confidential client and three
// accounts. Usage: node provider.mjs <redirect_uri> <client_secret>
// Prints one JSON line {"issuer": "..."} on standard output once it listens; runs until killed.
//
// The sign-in pages are the package's own development interactions (a login form and a consent
// form); accounts not listed below are refused by findAccount.
//
// Key rotation: each line on standard input is a JSON command {"sign": NAME, "publish": [NAMES]}:
// from then on ID tokens are signed with the RSA key NAME (made on first mention, its `kid` is
// NAME) and the key set at /jwks lists exactly the public keys PUBLISH. A provider that rotates
// signs with a new key and publishes it, retiring the old; signing with a key left out of the set
// plays a token signed with an old or a forged key. oidc-provider reads its keys once, at
// construction, so a command builds a new Provider (same issuer, clients, accounts, cookie keys
// and in-memory storage) and swaps it in. Each command is answered with one JSON line
// {"jwks_requests": N}: how often the key set has been fetched so far. The first key is "k1".
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

// Standard output carries only this file's JSON lines: oidc-provider's own notices (it writes
// some with console.info) go to standard error.
const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
console.log = console.error;
console.info = console.error;
console.warn = console.error;

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

// RSA signing keys by name (= kid), private JWKs.
const keys = {};
function key(name) {
  if (!keys[name]) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    keys[name] = { ...privateKey.export({ format: 'jwk' }), kid: name, alg: 'RS256', use: 'sig' };
  }
  return keys[name];
}
function publicJwk(name) {
  const { kid, alg, use } = key(name);
  const pub = createPublicKey({ key: key(name), format: 'jwk' }).export({ format: 'jwk' });
  return { ...pub, kid, alg, use };
}

const cookieKeys = [randomUUID()];
let published = ['k1'];
let jwksRequests = 0;

function makeProvider(issuer, signingKey) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'lockstep',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [key(signingKey)] },
    cookies: { keys: cookieKeys },
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
  return provider.callback();
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  let handle = makeProvider(issuer, 'k1');
  server.on('request', (req, res) => {
    // The key set is served here rather than by oidc-provider, so it can differ from the key
    // that signs (see the top of this file).
    if (req.method === 'GET' && req.url.split('?')[0] === '/jwks') {
      jwksRequests += 1;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json; charset=utf-8' });
      res.end(JSON.stringify({ keys: published.map(publicJwk) }));
      return;
    }
    handle(req, res);
  });
  createInterface({ input: process.stdin }).on('line', (line) => {
    const command = JSON.parse(line);
    if (command.sign) {
      handle = makeProvider(issuer, command.sign);
      published = command.publish;
    }
    answer({ jwks_requests: jwksRequests });
  });
  answer({ issuer });
});
