// A real OpenID Connect provider on 127.0.0.1 for spog's single sign-on tests, built on
// oauth2-mock-server (discovery, JWKS, authorization code with PKCE and nonce, token and
// userinfo endpoints, RS256 ID tokens). It listens on a free port and prints
// `{"issuer": "http://127.0.0.1:PORT"}` once ready. Tests steer it over the same port:
//   POST /control/user    {"sub", "claims": {...}}  the identity the next sign-ins are for
//   POST /control/rotate  a new signing key (new kid); the old key is gone from the JWKS
// The authorize endpoint answers at once with a redirect (no login page): the user is the
// one set last.
import http from "node:http";
import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

let user = { sub: "johndoe", claims: {} };
let service;
let issuerUrl;

async function freshService() {
  const issuer = new OAuth2Issuer();
  issuer.url = issuerUrl;
  await issuer.keys.generate("RS256");
  const next = new OAuth2Service(issuer);
  next.on("beforeTokenSigning", (token) => {
    Object.assign(token.payload, { sub: user.sub }, user.claims);
  });
  next.on("beforeUserinfo", (response) => {
    response.body = { sub: user.sub, ...user.claims };
  });
  return next;
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let text = "";
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (error) {
        reject(error);
      }
    });
  });
}

const server = http.createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/control/user") {
    user = await readJson(req);
    user.claims ??= {};
    res.writeHead(204).end();
  } else if (req.method === "POST" && req.url === "/control/rotate") {
    service = await freshService();
    res.writeHead(204).end();
  } else {
    service.requestHandler(req, res);
  }
});

server.listen(0, "127.0.0.1", async () => {
  issuerUrl = `http://127.0.0.1:${server.address().port}`;
  service = await freshService();
  process.stdout.write(JSON.stringify({ issuer: issuerUrl }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
