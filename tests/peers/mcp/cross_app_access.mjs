// The TypeScript MCP SDK's CrossAppAccessProvider (enterprise-managed authorization, SEP-990)
// calling the `whoami` tool of an MCP server protected by tessera. Everything comes from the
// environment (secrets and tokens never on the command line):
//   MCP_URL                      the MCP server (its RFC 9728 metadata names the AS)
//   MCP_ISSUER                   the MCP authorization server (a tessera tenant)
//   MCP_CLIENT_ID/_SECRET        the MCP client's client there
//   IDP_ISSUER                   the enterprise IdP (another tessera tenant)
//   IDP_CLIENT_ID/_SECRET        the agent's client at the IdP
//   ID_TOKEN                     the user's ID token from the IdP
//   SCOPE                        the scope to ask for
// Prints one JSON line: {"ok": true, "result": ...} or {"ok": false, "error": ...}.
import {
  Client,
  CrossAppAccessProvider,
  StreamableHTTPClientTransport,
  discoverAndRequestJwtAuthGrant,
} from '@modelcontextprotocol/client';

const env = process.env;
const calls = [];

const provider = new CrossAppAccessProvider({
  assertion: async (ctx) => {
    calls.push({ audience: ctx.authorizationServerUrl, resource: ctx.resourceUrl });
    const result = await discoverAndRequestJwtAuthGrant({
      idpUrl: env.IDP_ISSUER,
      audience: ctx.authorizationServerUrl,
      resource: ctx.resourceUrl,
      idToken: env.ID_TOKEN,
      clientId: env.IDP_CLIENT_ID,
      clientSecret: env.IDP_CLIENT_SECRET,
      scope: env.SCOPE,
      fetchFn: ctx.fetchFn,
    });
    return result.jwtAuthGrant;
  },
  clientId: env.MCP_CLIENT_ID,
  clientSecret: env.MCP_CLIENT_SECRET,
  expectedIssuer: env.MCP_ISSUER,
});

try {
  const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), { authProvider: provider });
  const client = new Client({ name: 'tessera-interop', version: '0.0.0' });
  await client.connect(transport);
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  await client.close();
  console.log(JSON.stringify({ ok: !result.isError, result, calls }));
} catch (error) {
  console.error(JSON.stringify({ ok: false, error: String(error?.stack ?? error), calls }));
  process.exit(1);
}
