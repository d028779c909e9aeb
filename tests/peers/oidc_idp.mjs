#!/usr/bin/env node
// A real upstream OpenID Provider for tessera's tests: panva's oidc-provider on loopback, playing
// the enterprise IdP that tessera (as a relying party) logs users in through.
//
// Usage: node oidc_idp.mjs CONFIG.json
//
// CONFIG.json:
//   {
//     "port": 43123,                          // required; listens on 127.0.0.1 only
//     "issuer": "http://127.0.0.1:43123",     // optional; defaults to that
//     "clients": [ {oidc-provider client metadata: client_id, client_secret, redirect_uris,
//                   token_endpoint_auth_method, jwks, id_token_signed_response_alg, ...} ],
//     "users": { "alice": {"email": "...", "name": "...", "groups": [...], ...} },
//     "claims": {scope: [claim names]},       // optional; replaces DEFAULT_CLAIMS below
//     "rotate": true,                         // optional; false turns POST /__test/rotate off
//     "rsa_keys": [{...private RSA JWK}],     // optional; used (in order) before generating
//     "cookie_keys": ["..."]                  // optional; default: random for this process
//   }
//
// Login: GET /interaction/:uid shows a plain HTML form (no JS), field "login" (the account id,
// or a user's email or preferred_username), posting to /interaction/:uid/login. Consent is given
// automatically: GET /interaction/:uid answers a consent prompt by granting what was asked.
// Test admin: POST /__test/rotate[?keep_old=1] makes new RS256 and ES256 signing keys, listed
// first in the JWKS (the old ones are dropped unless keep_old); answers {"kids": [...]}.
//
// Prints "READY <issuer>" on stdout once listening; logs go to stderr. Exits 0 on SIGTERM/SIGINT.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

const ACR = 'urn:mace:incommon:iap:silver';
const AMR = ['pwd', 'mfa'];
// Claims of the login session, supported (null: not tied to a scope). oidc-provider puts them in
// an ID token only when asked (acr_values, max_age, the claims parameter) or when a granted scope
// lists them: the default "openid" scope below does, as enterprise IdPs send acr/amr always.
const SESSION_CLAIMS = {
  acr: null, amr: null, auth_time: null, sid: null, iss: null,
};
const DEFAULT_CLAIMS = {
  openid: ['sub', 'acr', 'amr', 'auth_time'],
  email: ['email', 'email_verified'],
  profile: [
    'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username',
    'picture', 'website', 'locale', 'zoneinfo', 'updated_at', 'groups',
  ],
  groups: ['groups'],
};

function log(...args) {
  process.stderr.write(`[oidc-idp] ${args.join(' ')}\n`);
}

function fail(message) {
  log(`fatal: ${message}`);
  process.exit(2);
}

if (process.argv.length < 3) fail('usage: node oidc_idp.mjs CONFIG.json');
let config;
try {
  config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
} catch (err) {
  fail(`cannot read config ${process.argv[2]}: ${err.message}`);
}
const port = Number(config.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('config.port must be a TCP port');
const issuer = config.issuer || `http://127.0.0.1:${port}`;
const users = config.users || {};
const claimsConfig = { ...SESSION_CLAIMS, ...(config.claims || DEFAULT_CLAIMS) };
const scopes = Object.keys(claimsConfig).filter((key) => Array.isArray(claimsConfig[key]));
const cookieKeys = config.cookie_keys || [crypto.randomBytes(32).toString('base64url')];

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>
`;
}

// --- signing keys -------------------------------------------------------------------------

let generation = 0;
const rsaPool = Array.isArray(config.rsa_keys) ? [...config.rsa_keys] : [];

function newSigningKeys() {
  generation += 1;
  const tag = `${generation}-${crypto.randomBytes(4).toString('hex')}`;
  // RSA keys come from the test harness (config.rsa_keys) while it has some: on this machine a
  // fresh Node process with oidc-provider loaded sometimes stalled for many seconds in its
  // first RSA key generation (seen about 1 start in 30 under load); EC keys are cheap to make.
  const rsa = rsaPool.length ? rsaPool.shift()
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
      .export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    .export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rs256-${tag}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es256-${tag}`, alg: 'ES256', use: 'sig' },
  ];
}

let signingKeys = newSigningKeys();
const rotationEnabled = config.rotate !== false;

// --- accounts -----------------------------------------------------------------------------

function findUser(login) {
  if (typeof login !== 'string' || login === '') return undefined;
  if (Object.hasOwn(users, login)) return login;
  return Object.keys(users).find(
    (id) => users[id].email === login || users[id].preferred_username === login,
  );
}

async function findAccount(ctx, sub) {
  if (!Object.hasOwn(users, sub)) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { ...users[sub], sub };
    },
  };
}

// --- the provider (rebuilt on key rotation; the in-memory adapter's store is shared) --------

async function renderError(ctx, out) {
  ctx.type = 'html';
  const rows = Object.entries(out)
    .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: <span class="${escapeHtml(k)}">`
      + `${escapeHtml(v)}</span></p>`)
    .join('\n');
  ctx.body = page('Error', rows);
}

function buildProvider() {
  const provider = new Provider(issuer, {
    clients: config.clients || [],
    findAccount,
    claims: claimsConfig,
    scopes: [...new Set(['openid', 'offline_access', ...scopes])],
    acrValues: [ACR],
    conformIdTokenClaims: false, // scope claims go in the ID token too, not only at userinfo
    jwks: { keys: signingKeys },
    cookies: {
      keys: cookieKeys,
      // over plain http ctx.secure is false, so the cookies go without the Secure attribute
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 knows
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
      Grant: 14 * 24 * 3600,
      IdToken: 3600,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
    },
    renderError,
  });
  provider.proxy = false;
  provider.on('server_error', (ctx, err) => log('server_error', err.stack || err));
  return provider;
}

let provider = buildProvider();
let handler = provider.callback();

// --- interaction routes -------------------------------------------------------------------

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function autoConsent(req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  } else {
    grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  }
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function interactionPage(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Error', '<p>interaction mismatch</p>'));
  switch (details.prompt.name) {
    case 'login': {
      const client = escapeHtml(details.params.client_id);
      return send(res, 200, page('Sign in', `<p>Sign in to continue to ${client}.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Login <input type="text" name="login" autofocus></label>
<button type="submit">Sign in</button>
</form>`));
    }
    case 'consent':
      return autoConsent(req, res, details);
    default:
      return send(res, 400, page('Error', `<p>unsupported prompt ${
        escapeHtml(details.prompt.name)}</p>`));
  }
}

async function interactionLogin(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid || details.prompt.name !== 'login') {
    return send(res, 400, page('Error', '<p>no login pending for this interaction</p>'));
  }
  const form = await readForm(req);
  const accountId = findUser(form.get('login'));
  if (accountId === undefined) {
    return send(res, 400, page('Sign-in failed', '<p class="error">Unknown user.</p>'));
  }
  return provider.interactionFinished(req, res, {
    login: { accountId, acr: ACR, amr: AMR },
  }, { mergeWithLastSubmission: false });
}

function rotate(res, url) {
  const keepOld = ['1', 'true', 'yes'].includes(url.searchParams.get('keep_old') || '');
  const old = signingKeys;
  signingKeys = [...newSigningKeys(), ...(keepOld ? old : [])];
  provider = buildProvider();
  handler = provider.callback();
  log('rotated signing keys:', signingKeys.map((k) => k.kid).join(' '));
  send(res, 200, JSON.stringify({ kids: signingKeys.map((k) => k.kid) }), 'application/json');
}

const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)$/;
const LOGIN = /^\/interaction\/([A-Za-z0-9_-]+)\/login$/;

async function route(req, res) {
  const url = new URL(req.url, issuer);
  let match;
  if (req.method === 'POST' && url.pathname === '/__test/rotate' && rotationEnabled) {
    return rotate(res, url);
  }
  if (req.method === 'GET' && (match = INTERACTION.exec(url.pathname))) {
    return interactionPage(req, res, match[1]);
  }
  if (req.method === 'POST' && (match = LOGIN.exec(url.pathname))) {
    return interactionLogin(req, res, match[1]);
  }
  return handler(req, res);
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    const expected = err instanceof errors.SessionNotFound || err instanceof errors.OIDCProviderError;
    if (!expected) log('interaction error', err.stack || err);
    if (!res.headersSent) {
      send(res, expected ? (err.statusCode || 400) : 500,
        page('Error', `<p class="error">${escapeHtml(err.message)}${
          err.error_description ? `: ${escapeHtml(err.error_description)}` : ''}</p>`));
    } else {
      res.end();
    }
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${port}: ${err.message}`));

function shutdown(signal) {
  log(`${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
