// s3rver checks the access key id of a request but not its SigV4 signature,
// so this proxy, put between cordon and s3rver by tests/integration/test_s3.py,
// checks each one the way S3 does: the canonical request rebuilt from the
// signed headers, signed again by the AWS SDK's own signer
// (@smithy/signature-v4) with the one secret key it knows, and the body's
// sha256 compared with x-amz-content-sha256. A request that fails either
// gets S3's 403 SignatureDoesNotMatch (or XAmzContentSHA256Mismatch, 400);
// the rest go on to s3rver unchanged (but for the "flaky" prefix, below).
//   node sigv4-proxy.mjs LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT SECRET
// prints "ready" once it listens.
import { createHash, createHmac } from "node:crypto";
import http from "node:http";
import { SignatureV4 } from "@smithy/signature-v4";

const [host, port, upHost, upstream, secret] = process.argv.slice(2);
const BODY_MAX = 64 << 20;

class Sha256 {
  constructor(key) { this.h = key ? createHmac("sha256", key) : createHash("sha256"); }
  update(d) { this.h.update(d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

function fail(res, status, code, message) {
  res.writeHead(status, { "content-type": "application/xml" });
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
          `<Message>${message}</Message></Error>`);
}

async function check(req, body) {
  const auth = req.headers.authorization || "";
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return "not a SigV4 Authorization header";
  const [, keyId, , region, signed, signature] = m;
  const sha = req.headers["x-amz-content-sha256"];
  if (sha !== "UNSIGNED-PAYLOAD" && sha !== createHash("sha256").update(body).digest("hex"))
    return "x-amz-content-sha256";
  const url = new URL(req.url, `http://${req.headers.host}`);
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const headers = {};
  for (const h of signed.split(";")) headers[h] = req.headers[h];
  const d = req.headers["x-amz-date"] || "";
  const date = new Date(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:` +
                        `${d.slice(11, 13)}:${d.slice(13, 15)}Z`);
  const signer = new SignatureV4({
    credentials: { accessKeyId: keyId, secretAccessKey: secret,
                   sessionToken: req.headers["x-amz-security-token"] },
    region, service: "s3", sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  const out = await signer.sign({
    method: req.method, protocol: "http:", hostname: url.hostname, port: url.port,
    path: decodeURIComponent(url.pathname), query, headers,
  }, { signingDate: date, unsignableHeaders: new Set(), signableHeaders: new Set(signed.split(";")) });
  const want = /Signature=([0-9a-f]{64})/.exec(out.headers.authorization)[1];
  return want === signature ? null : "SignatureDoesNotMatch";
}

// The first try of each request below a "flaky" prefix gets a 503, as S3
// answers SlowDown now and then: a client must try again.
const tried = new Set();

http.createServer((req, res) => {
  const chunks = [];
  let len = 0;
  req.on("data", (c) => { len += c.length; if (len <= BODY_MAX) chunks.push(c); });
  req.on("end", async () => {
    const body = Buffer.concat(chunks);
    let why;
    try { why = await check(req, body); } catch (e) { why = String(e); }
    if (why === "x-amz-content-sha256")
      return fail(res, 400, "XAmzContentSHA256Mismatch", "the body is not the one signed");
    // S3 echoes what it signed (StringToSign, CanonicalRequest, which holds
    // x-amz-security-token); here the token is echoed in the Message itself,
    // the part cordon shows, so a test sees that cordon scrubs it.
    const token = req.headers["x-amz-security-token"];
    if (why)
      return fail(res, 403, "SignatureDoesNotMatch", "The request signature we calculated " +
                  "does not match the signature you provided." +
                  (token ? ` Signed: x-amz-security-token:${token}` : ""));
    if (req.url.includes("/flaky/") && !tried.has(req.method + " " + req.url)) {
      tried.add(req.method + " " + req.url);
      return fail(res, 503, "SlowDown", "Please reduce your request rate.");
    }
    const up = http.request({ host: upHost, port: upstream, method: req.method,
                              path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", () => fail(res, 502, "BadGateway", "s3rver"));
    up.end(body);
  });
}).listen(Number(port), host, () => console.log("ready"));
