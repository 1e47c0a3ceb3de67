// A real OpenID Connect provider on 127.0.0.1 for the console's browser test:
// node provider.mjs PORT REDIRECT_URI
// One public client (PKCE required), the dev login form (any user name, any password), ID tokens
// with `preferred_username` and `groups` (users whose name starts with "admin" are in wave-admins),
// and JWT access tokens for the gateway (audience wave-gateway, claim wave_models).
import http from "node:http";
import Provider from "oidc-provider";

const [port, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "wave-console",
      token_endpoint_auth_method: "none",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  pkce: { required: () => true },
  claims: { openid: ["sub"], profile: ["preferred_username", "groups"] },
  conformIdTokenClaims: false,
  cookies: { keys: ["wave-console-test-only"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, groups: id.startsWith("admin") ? ["wave-admins"] : ["staff"] };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:wave:gateway",
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "openid profile",
        audience: "wave-gateway",
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  extraTokenClaims: async () => ({ wave_models: ["*"] }),
  ttl: { AccessToken: 600, IdToken: 600, AuthorizationCode: 60, Session: 600, Interaction: 600, Grant: 600 },
});
provider.proxy = false;

http.createServer(provider.callback()).listen(Number(port), "127.0.0.1", () => {
  console.log(`oidc provider ${issuer}`);
});
