#!/usr/bin/env node
// Sign a snapshot for gnn-service workers that require signed messages, from Node.js 20
// with nothing but node:crypto, and print the kombu envelope to LPUSH onto the queue.
//
//   node docs/examples/sign_snapshot.mjs --key producer.key --cert producer.pem snapshot.json \
//     | redis-cli -x LPUSH gnn.snapshots
//
// Options: --queue NAME (default gnn.snapshots: the envelope's routing key, not where it is
// pushed), --digest sha256|sha384|sha512 (GNN_SECURITY__SIGNING_DIGEST of the workers,
// default sha256). An encrypted key's password is read from GNN_SECURITY__SIGNING_KEY_PASSWORD.
//
// The format is Celery's `auth` serializer (docs/security.md, service/signing.py):
//   inner   = the protocol-2 task body [[snapshot], {}, {callbacks, errbacks, chain, chord}]
//   signed  = base64( base64(signer) 0x00 0x01 base64(signature) 0x00 0x01
//                     "application/json" 0x00 0x01 "utf-8" 0x00 0x01 inner )
// with signer = the certificate issuer's attribute values joined by spaces, a space and the
// serial number in decimal, and signature = RSA-PSS (MGF1, maximum salt length) over the
// inner bytes. The envelope carries `signed` base64-encoded once more (kombu's body
// encoding), content type application/data, and the headers docs/messages.md lists.

import { createPrivateKey, randomUUID, sign, constants, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";

const SEPARATOR = Buffer.from([0x00, 0x01]);
const TASK = "gnn.diagnose";

function fail(message) {
  process.stderr.write(`sign_snapshot: ${message}\n`);
  process.exit(2);
}

// --- A small DER reader: just enough to read the issuer and serial of a certificate. ---

function readTlv(der, offset) {
  const tag = der[offset];
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + der[start + i];
    start += count;
  }
  return { tag, start, end: start + length };
}

function children(der, { start, end }) {
  const items = [];
  for (let offset = start; offset < end; ) {
    const item = readTlv(der, offset);
    items.push(item);
    offset = item.end;
  }
  return items;
}

function decodeString(der, { tag, start, end }) {
  const bytes = der.subarray(start, end);
  if (tag === 0x1e) return Buffer.from(bytes).swap16().toString("utf16le"); // BMPString: UTF-16BE
  if (tag === 0x1c) {
    // UniversalString: UTF-32BE
    let text = "";
    for (let i = 0; i + 3 < bytes.length; i += 4) text += String.fromCodePoint(bytes.readUInt32BE(i));
    return text;
  }
  return bytes.toString(tag === 0x14 ? "latin1" : "utf8"); // Teletex as Latin-1, others UTF-8
}

/** Celery's certificate id: "<issuer attribute values joined by spaces> <serial number>". */
function signerId(certificatePem) {
  const der = new X509Certificate(certificatePem).raw;
  const [tbs] = children(der, readTlv(der, 0));
  const fields = children(der, tbs);
  const first = fields[0].tag === 0xa0 ? 1 : 0; // [0] version is optional
  const serialField = fields[first];
  const issuer = fields[first + 2];
  let serial = 0n;
  for (const byte of der.subarray(serialField.start, serialField.end)) {
    serial = serial * 256n + BigInt(byte);
  }
  const values = [];
  for (const rdn of children(der, issuer)) {
    for (const attribute of children(der, rdn)) {
      const [, value] = children(der, attribute);
      values.push(decodeString(der, value));
    }
  }
  return `${values.join(" ")} ${serial}`;
}

// --- The envelope. ---

const { values: options, positionals } = parseArgs({
  options: {
    key: { type: "string" },
    cert: { type: "string" },
    queue: { type: "string", default: "gnn.snapshots" },
    digest: { type: "string", default: "sha256" },
  },
  allowPositionals: true,
});
if (!options.key || !options.cert || positionals.length !== 1) {
  fail("usage: sign_snapshot.mjs --key KEY.pem --cert CERT.pem [--queue Q] [--digest sha256] SNAPSHOT.json");
}
if (!["sha256", "sha384", "sha512"].includes(options.digest)) {
  fail(`--digest must be sha256, sha384 or sha512, got ${options.digest}`);
}

let snapshotText;
let snapshot;
try {
  snapshotText = readFileSync(positionals[0], "utf8").trim();
  snapshot = JSON.parse(snapshotText);
} catch (error) {
  fail(`${positionals[0]}: ${error.message}`);
}
if (snapshot === null || typeof snapshot !== "object" || Array.isArray(snapshot)) {
  fail(`${positionals[0]}: a snapshot is a JSON object`);
}
if (typeof snapshot.snapshot_id !== "string" || snapshot.snapshot_id === "") {
  fail(`${positionals[0]}: snapshot_id must be a non-empty string`);
}
if (snapshot.deadline != null && typeof snapshot.deadline !== "string") {
  fail(`${positionals[0]}: deadline must be an ISO-8601 string or absent`);
}

// The snapshot's own text goes into the body unchanged (no number is reformatted): the
// worker reads back exactly what was signed.
const inner = Buffer.from(
  `[[${snapshotText}], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`,
  "utf8",
);
const key = createPrivateKey({
  key: readFileSync(options.key),
  passphrase: process.env.GNN_SECURITY__SIGNING_KEY_PASSWORD,
});
const signature = sign(options.digest, inner, {
  key,
  padding: constants.RSA_PKCS1_PSS_PADDING,
  saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
});
const signer = signerId(readFileSync(options.cert));
const signed = Buffer.from(
  Buffer.concat([
    Buffer.from(Buffer.from(signer, "utf8").toString("base64")),
    SEPARATOR,
    Buffer.from(signature.toString("base64")),
    SEPARATOR,
    Buffer.from("application/json"),
    SEPARATOR,
    Buffer.from("utf-8"),
    SEPARATOR,
    inner,
  ]).toString("base64"),
);

const id = snapshot.snapshot_id;
const headers = {
  lang: "js",
  task: TASK,
  id, // the snapshot id: workers dead-letter a message whose id header differs from it
  root_id: id,
  parent_id: null,
  group: null,
  eta: null,
  // With signing on, only the signed deadline counts; an expires header must be that instant.
  expires: snapshot.deadline ?? null,
  retries: 0,
  timelimit: [null, null],
  argsrepr: `[snapshot ${id}]`,
  kwargsrepr: "{}",
  origin: `node@${hostname()}`,
  gnn_published_at: Date.now() / 1000,
};
if (typeof snapshot.correlation_id === "string") headers.gnn_correlation_id = snapshot.correlation_id;

const envelope = {
  body: signed.toString("base64"),
  "content-encoding": "utf-8",
  "content-type": "application/data",
  headers,
  properties: {
    correlation_id: id,
    reply_to: randomUUID(),
    delivery_mode: 2,
    delivery_info: { exchange: "", routing_key: options.queue },
    priority: 0,
    body_encoding: "base64",
    delivery_tag: randomUUID(),
  },
};
process.stdout.write(`${JSON.stringify(envelope)}\n`);
