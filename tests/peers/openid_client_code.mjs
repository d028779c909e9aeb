#!/usr/bin/env node
// Drive tessera's OpenID Provider role with openid-client v6 (a third-party relying party):
// discovery, the authorization code flow with PKCE (S256), state, nonce, a pushed authorization
// request (RFC 9126) and DPoP (RFC 9449: the PAR request carries a DPoP proof, which binds the
// code to the key, RFC 9449 §10.1), then the code grant, UserInfo and a refresh, all with DPoP.
//
// Usage:
//   node openid_client_code.mjs --issuer=URL --client-id=ID --redirect-uri=URL
//        [--scope="openid email profile"] [--no-par] [--no-dpop] [--token-key=same|other]
// Prefer --opt=value: a client id may begin with "-", which parseArgs would take for an option.
// The client is public (token_endpoint_auth_method "none") unless TESSERA_CLIENT_SECRET is set
// (then client_secret_basic). --token-key=other redeems the code with a fresh DPoP key instead
// of the one the PAR request proved: tessera must refuse (the code is bound to the first key).
//
// Protocol (the caller plays the browser):
//   1. prints one JSON line {"authorization_url": ..., "dpop_public_jwk": ...} on stdout;
//   2. reads one line from stdin: the callback URL the browser was sent to (code, state, iss);
//   3. prints one JSON line {"token": ..., "id_token_claims": ..., "userinfo": ...,
//      "refresh": ..., ...} on stdout and exits 0.
// On failure prints one JSON line {"error": ..., ...} on stderr and exits 1 (2 for bad usage).

import { webcrypto } from 'node:crypto';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import * as client from 'openid-client';

function usage(message) {
  process.stderr.write(`${JSON.stringify({ error: 'usage', message })}\n`);
  process.exit(2);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        issuer: { type: 'string' },
        'client-id': { type: 'string' },
        'redirect-uri': { type: 'string' },
        scope: { type: 'string', default: 'openid email profile' },
        'no-par': { type: 'boolean', default: false },
        'no-dpop': { type: 'boolean', default: false },
        'token-key': { type: 'string', default: 'same' },
      },
      allowPositionals: false,
    });
  } catch (err) {
    usage(err.message);
  }
  const { values } = parsed;
  const opts = {
    issuer: values.issuer ?? process.env.TESSERA_ISSUER,
    clientId: values['client-id'] ?? process.env.TESSERA_CLIENT_ID,
    clientSecret: process.env.TESSERA_CLIENT_SECRET,
    redirectUri: values['redirect-uri'],
    scope: values.scope,
    par: !values['no-par'],
    dpop: !values['no-dpop'],
    tokenKey: values['token-key'],
  };
  if (!opts.issuer || !opts.clientId || !opts.redirectUri) {
    usage('--issuer, --client-id and --redirect-uri are required');
  }
  if (!['same', 'other'].includes(opts.tokenKey)) usage(`unsupported --token-key ${opts.tokenKey}`);
  if (opts.tokenKey === 'other' && !opts.dpop) usage('--token-key=other needs DPoP');
  return opts;
}

function emit(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function readLine() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim()) {
      lines.close();
      return line.trim();
    }
  }
  throw new Error('stdin closed before the callback URL arrived');
}

function oauthError(err) {
  return { error: err?.error ?? err?.code ?? err?.name, description: err?.error_description };
}

async function main() {
  const opts = options();
  const issuer = new URL(opts.issuer);
  const execute = issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [];
  const auth = opts.clientSecret ? client.ClientSecretBasic(opts.clientSecret) : client.None();
  const config = await client.discovery(issuer, opts.clientId, undefined, auth, { execute });

  let DPoP;
  let publicJwk;
  if (opts.dpop) {
    const keyPair = await client.randomDPoPKeyPair();
    DPoP = client.getDPoPHandle(config, keyPair);
    publicJwk = await webcrypto.subtle.exportKey('jwk', keyPair.publicKey);
  }

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const parameters = {
    redirect_uri: opts.redirectUri,
    scope: opts.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  const authorizationUrl = opts.par
    ? await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP })
    : client.buildAuthorizationUrl(config, parameters);
  emit({ authorization_url: authorizationUrl.href, dpop_public_jwk: publicJwk ?? null });

  const callback = new URL(await readLine());
  const out = { callback_params: Object.fromEntries(callback.searchParams) };

  let tokenDPoP = DPoP;
  if (opts.tokenKey === 'other') {
    tokenDPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
  }
  // validates iss (RFC 9207), state, the ID token (iss, aud, azp, exp, iat, nonce), PKCE
  const tokens = await client.authorizationCodeGrant(
    config, callback, { pkceCodeVerifier: codeVerifier, expectedState: state,
      expectedNonce: nonce, idTokenExpected: opts.scope.split(' ').includes('openid') },
    undefined, { DPoP: tokenDPoP },
  );
  if (opts.tokenKey === 'other') {
    throw new Error('the code was redeemed under another DPoP key than the PAR request proved');
  }
  const claims = tokens.claims();
  out.token = {
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    has_refresh_token: typeof tokens.refresh_token === 'string',
    has_id_token: typeof tokens.id_token === 'string',
  };
  out.id_token_claims = claims ?? null;

  out.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });

  if (tokens.refresh_token) {
    if (opts.dpop && !opts.clientSecret) {
      // the refresh token of a public client is bound to the DPoP key (RFC 9449 §5; those of
      // confidential clients to their credentials): a stranger's key fails, and the failed
      // attempt must not use the token up
      const stranger = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
      try {
        await client.refreshTokenGrant(config, tokens.refresh_token, undefined,
          { DPoP: stranger });
        out.refresh_with_other_key = { error: null };
      } catch (err) {
        out.refresh_with_other_key = oauthError(err);
      }
    }
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined,
      { DPoP });
    out.refresh = {
      access_token: refreshed.access_token,
      token_type: refreshed.token_type,
      expires_in: refreshed.expires_in,
      scope: refreshed.scope,
      rotated: typeof refreshed.refresh_token === 'string'
        && refreshed.refresh_token !== tokens.refresh_token,
      id_token_claims: refreshed.claims() ?? null,
    };
  }
  return out;
}

try {
  emit(await main());
} catch (err) {
  const report = {
    error: err?.name ?? 'Error',
    message: err?.message ?? String(err),
    code: err?.code,
    oauth_error: err?.error,
    oauth_error_description: err?.error_description,
    status: err?.status,
    cause: err?.cause instanceof Error ? `${err.cause.name}: ${err.cause.message}` : err?.cause,
  };
  process.stderr.write(`${JSON.stringify(report)}\n`);
  process.exitCode = 1;
}
