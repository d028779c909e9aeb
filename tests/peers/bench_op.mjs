#!/usr/bin/env node
// node oidc-provider as the reference server of scripts/bench_side_by_side.py: the token
// endpoint for client credentials with RFC 8707 resource indicators and DPoP, and token
// introspection, with the default in-memory store, on 127.0.0.1.
//
// Usage: node bench_op.mjs CONFIG.json   (see bench_op.json)
// Prints "READY <issuer>" on stdout once listening. Exits 0 on SIGTERM/SIGINT.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
const issuer = config.issuer || `http://127.0.0.1:${port}`;
const resources = config.resources || {};

const signingKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ format: 'jwk' });
signingKey.kid = 'bench-es256';
signingKey.alg = 'ES256';
signingKey.use = 'sig';

const provider = new Provider(issuer, {
  clients: [config.client],
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'read'],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        const info = resources[indicator];
        if (!info) throw new Error(`unknown resource ${indicator}`);
        return info;
      },
    },
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => process.stderr.write(`server_error ${err.stack}\n`));

const server = http.createServer(provider.callback());
server.keepAliveTimeout = 75_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`READY ${issuer}\n`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
