// A SAML 2.0 service provider built with samlify (npm), driven by tessera's tests.
//
// Reads one JSON object on stdin:
//   {"action": "login-request", "idp_metadata": "<EntityDescriptor..>", "sp": SP,
//    "binding": "redirect" | "post", "relay_state": "...", "force_authn": true?}
//     -> {"id": request ID, "url": redirect URL}            (binding redirect)
//     -> {"id", "endpoint", "SAMLRequest", "RelayState"}     (binding post)
//   {"action": "metadata", "idp_metadata": "...", "sp": SP} -> {"metadata": "<EntityDescriptor..>"}
//   {"action": "parse", "idp_metadata": "...", "sp": SP, "saml_response": base64,
//    "relay_state": "...", "expect_in_response_to": "..." | null}
//     -> {"ok": true, "nameID", "nameIDFormat", "attributes", "issuer", "audience",
//         "inResponseTo", "sessionIndex"} or {"ok": false, "error": "..."}
// SP = {"entityID", "acs", "nameIDFormat"?, "privateKey"? (PEM), "cert"? (PEM)}: with a key,
// AuthnRequests are signed (RSA-SHA256).
//
// samlify verifies the signature, the Issuer against the IdP metadata (and the KeyInfo
// certificate against the metadata's), the status and the Conditions' time window; it leaves
// the audience and InResponseTo to the application (its documentation says so), so this
// script checks them the way an application using samlify must.
//
// Schema validation: @authenio/samlify-node-xmllint (libxml2's xmllint compiled to JS; the
// SAML protocol, assertion, xmldsig and xenc XSDs), which samlify requires before parsing.
import * as samlify from "samlify";
import * as validator from "@authenio/samlify-node-xmllint";

samlify.setSchemaValidator(validator);

const POST = samlify.Constants.namespace.binding.post;

function readStdin() {
  return new Promise((resolve, reject) => {
    let data = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => { data += chunk; });
    process.stdin.on("end", () => resolve(data));
    process.stdin.on("error", reject);
  });
}

function entities(input) {
  const sp = input.sp;
  const signed = Boolean(sp.privateKey);
  const settings = {
    entityID: sp.entityID,
    assertionConsumerService: [{ Binding: POST, Location: sp.acs }],
    wantAssertionsSigned: true,
    authnRequestsSigned: signed,
    clockDrifts: [-5000, 5000],
  };
  if (sp.nameIDFormat) settings.nameIDFormat = [sp.nameIDFormat];
  if (signed) {
    settings.privateKey = sp.privateKey;
    settings.signingCert = sp.cert;
    settings.requestSignatureAlgorithm = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
  }
  return {
    sp: samlify.ServiceProvider(settings),
    idp: samlify.IdentityProvider({ metadata: input.idp_metadata }),
  };
}

async function loginRequest(input) {
  const { sp, idp } = entities(input);
  const binding = input.binding || "redirect";
  const created = sp.createLoginRequest(idp, binding, {
    relayState: input.relay_state, forceAuthn: input.force_authn || undefined,
  });
  if (binding === "redirect") return { id: created.id, url: created.context };
  return { id: created.id, endpoint: created.entityEndpoint, SAMLRequest: created.context,
           RelayState: created.relayState };
}

async function metadata(input) {
  return { metadata: entities(input).sp.getMetadata() };
}

async function parse(input) {
  const { sp, idp } = entities(input);
  try {
    const { extract } = await sp.parseLoginResponse(idp, "post", {
      body: { SAMLResponse: input.saml_response, RelayState: input.relay_state || "" },
    });
    const audience = [].concat(extract.audience || []);
    if (!audience.includes(input.sp.entityID)) {
      return { ok: false, error: `ERR_AUDIENCE: ${JSON.stringify(extract.audience)}` };
    }
    const inResponseTo = extract.response && extract.response.inResponseTo;
    if (input.expect_in_response_to && inResponseTo !== input.expect_in_response_to) {
      return { ok: false, error: `ERR_IN_RESPONSE_TO: ${inResponseTo}` };
    }
    return {
      ok: true, nameID: extract.nameID, attributes: extract.attributes || {},
      issuer: extract.issuer, audience: extract.audience, inResponseTo,
      sessionIndex: extract.sessionIndex,
    };
  } catch (err) {
    return { ok: false, error: String(err && err.message ? err.message : err) };
  }
}

const input = JSON.parse(await readStdin());
const actions = { "login-request": loginRequest, metadata, parse };
const action = actions[input.action];
if (!action) {
  process.stderr.write(`unknown action ${input.action}\n`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(await action(input)) + "\n");
