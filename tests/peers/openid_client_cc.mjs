#!/usr/bin/env node
// Drive tessera with openid-client v6 (a third-party OAuth client): discover the issuer,
// run the client credentials grant with a DPoP-bound token, call a protected resource with it.
//
// Usage:
//   node openid_client_cc.mjs --issuer URL --client-id ID [--client-secret S]
//        [--scope "a b"] [--resource URI] [--resource-url URL]
//        [--auth client_secret_basic|client_secret_post] [--discovery oidc|oauth2]
//        [--no-dpop] [--discover-only]
// Prefer --opt=value: a client id may begin with "-", which parseArgs would take for an option.
// Each of --issuer, --client-id, --client-secret may instead come from TESSERA_ISSUER,
// TESSERA_CLIENT_ID, TESSERA_CLIENT_SECRET (keeps the secret out of the process list).
//
// Prints one JSON line on stdout: {"discovery": {...}, "token": {...}, "resource": {...}}.
// On failure prints one JSON line {"error": ..., ...} on stderr and exits 1 (2 for bad usage).

import { webcrypto } from 'node:crypto';
import process from 'node:process';
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
        'client-secret': { type: 'string' },
        scope: { type: 'string' },
        resource: { type: 'string' },
        'resource-url': { type: 'string' },
        auth: { type: 'string', default: 'client_secret_basic' },
        discovery: { type: 'string', default: 'oidc' },
        'no-dpop': { type: 'boolean', default: false },
        'discover-only': { type: 'boolean', default: false },
      },
      allowPositionals: true,
    });
  } catch (err) {
    usage(err.message);
  }
  const { values, positionals } = parsed;
  const opts = {
    issuer: values.issuer ?? positionals[0] ?? process.env.TESSERA_ISSUER,
    clientId: values['client-id'] ?? positionals[1] ?? process.env.TESSERA_CLIENT_ID,
    clientSecret: values['client-secret'] ?? positionals[2] ?? process.env.TESSERA_CLIENT_SECRET,
    scope: values.scope,
    resource: values.resource,
    resourceUrl: values['resource-url'],
    auth: values.auth,
    discovery: values.discovery,
    dpop: !values['no-dpop'],
    discoverOnly: values['discover-only'],
  };
  if (!opts.issuer || !opts.clientId) usage('--issuer and --client-id are required');
  if (!['client_secret_basic', 'client_secret_post'].includes(opts.auth)) {
    usage(`unsupported --auth ${opts.auth}`);
  }
  if (!['oidc', 'oauth2'].includes(opts.discovery)) {
    usage(`unsupported --discovery ${opts.discovery}`);
  }
  if (!opts.discoverOnly && !opts.clientSecret) usage('a client secret is required');
  return opts;
}

function clientAuth(opts) {
  if (!opts.clientSecret) return client.None();
  return opts.auth === 'client_secret_post'
    ? client.ClientSecretPost(opts.clientSecret)
    : client.ClientSecretBasic(opts.clientSecret);
}

async function main() {
  const opts = options();
  const issuer = new URL(opts.issuer);
  const execute = issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [];
  const config = await client.discovery(issuer, opts.clientId, undefined, clientAuth(opts), {
    execute,
    algorithm: opts.discovery,
  });
  const out = { discovery: { algorithm: opts.discovery, metadata: config.serverMetadata() } };
  if (opts.discoverOnly) return out;

  let keyPair;
  let DPoP;
  if (opts.dpop) {
    keyPair = await client.randomDPoPKeyPair();
    DPoP = client.getDPoPHandle(config, keyPair);
    out.dpop_public_jwk = await webcrypto.subtle.exportKey('jwk', keyPair.publicKey);
  }

  const parameters = {};
  if (opts.scope) parameters.scope = opts.scope;
  if (opts.resource) parameters.resource = opts.resource;
  const tokens = await client.clientCredentialsGrant(config, parameters, { DPoP });
  out.token = {
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
  };

  if (opts.resourceUrl) {
    const response = await client.fetchProtectedResource(
      config, tokens.access_token, new URL(opts.resourceUrl), 'GET', undefined, undefined,
      { DPoP },
    );
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    out.resource = {
      status: response.status,
      www_authenticate: response.headers.get('www-authenticate'),
      body,
    };
    if (!response.ok) {
      const err = new Error(`resource answered HTTP ${response.status}`);
      err.details = out;
      throw err;
    }
  }
  return out;
}

try {
  const out = await main();
  process.stdout.write(`${JSON.stringify(out)}\n`);
} catch (err) {
  const report = {
    error: err?.name ?? 'Error',
    message: err?.message ?? String(err),
    code: err?.code,
    oauth_error: err?.error,
    oauth_error_description: err?.error_description,
    status: err?.status,
    cause: err?.cause instanceof Error ? `${err.cause.name}: ${err.cause.message}` : err?.cause,
    details: err?.details,
  };
  process.stderr.write(`${JSON.stringify(report)}\n`);
  process.exitCode = 1;
}
