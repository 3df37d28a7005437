// Reads objects back through the official AWS SDK for JavaScript, so a test
// knows they are real S3 objects: `node objects.mjs BUCKET PREFIX` prints
// one JSON line per object under PREFIX with its key, size, sha256 of the
// bytes read and the x-amz-meta-sha256 stored with it, or to stdout the
// bytes of one object with `node objects.mjs BUCKET KEY --body`; with
// `--match TEXT` after PREFIX, only the objects whose key holds TEXT.
// The endpoint and credentials come from CORDON_S3_ENDPOINT and AWS_*.
import { createHash } from "node:crypto";
import {
  S3Client, ListObjectsCommand, GetObjectCommand,
} from "@aws-sdk/client-s3";

const [bucket, prefix, mode, match] = process.argv.slice(2);
const s3 = new S3Client({
  endpoint: process.env.CORDON_S3_ENDPOINT,
  region: process.env.AWS_REGION || "us-east-1",
  forcePathStyle: true,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
  },
});

async function bytes(key) {
  const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return { body: Buffer.from(await o.Body.transformToByteArray()), meta: o.Metadata || {} };
}

if (mode === "--body") {
  const { body } = await bytes(prefix);
  process.stdout.write(body);
} else {
  // ListObjects (v1) paged by Marker: s3rver makes ListObjectsV2's
  // continuation tokens with DES, which Node's OpenSSL 3 no longer has, so
  // a listing of more than 1000 keys fails there with InternalError.
  let marker;
  do {
    const page = await s3.send(new ListObjectsCommand({
      Bucket: bucket, Prefix: prefix, Marker: marker,
    }));
    for (const o of page.Contents || []) {
      if (mode === "--match" && !o.Key.includes(match)) continue;
      const { body, meta } = await bytes(o.Key);
      const sha256 = createHash("sha256").update(body).digest("hex");
      console.log(JSON.stringify({ key: o.Key, size: body.length, sha256, meta_sha256: meta.sha256 || null }));
    }
    const last = (page.Contents || []).at(-1);
    marker = page.IsTruncated && last ? last.Key : undefined;
  } while (marker);
}
