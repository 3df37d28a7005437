// SPDX-License-Identifier: Apache-2.0
// A directory as a tar.gz, the way `cordon agent register DIR` uploads it:
// regular files, directories and symlinks, paths relative to DIR, ending
// with the end-of-archive marker. POSIX ustar headers, with a pax header
// for a path or link target that does not fit. Node's built-ins only.
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BLOCK = 512;
const enc = new TextEncoder();

function octal(buf, off, len, value) {
  const s = value.toString(8).padStart(len - 1, "0");
  if (s.length > len - 1) throw new RangeError(`tar: ${value} does not fit in ${len - 1} octal digits`);
  buf.set(enc.encode(s), off); // the last byte stays NUL
}

function header(name, { mode, size, mtime, type, link = "" }) {
  const h = new Uint8Array(BLOCK);
  h.set(enc.encode(name), 0);
  octal(h, 100, 8, mode);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, mtime);
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  h[156] = type.charCodeAt(0);
  h.set(enc.encode(link), 157);
  h.set(enc.encode("ustar\x0000"), 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\x00 "), 148);
  return h;
}

function padded(data) {
  const out = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
  out.set(data);
  return out;
}

/** A pax record "LEN key=value\n", LEN counting itself. */
function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  const n = enc.encode(body).length;
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return `${len}${body}`;
}

function entry(blocks, name, meta, data) {
  const pax = [];
  const ascii = (s) => /^[\x20-\x7e]*$/.test(s);
  if (enc.encode(name).length > 99 || !ascii(name)) pax.push(paxRecord("path", name));
  if (meta.link && (enc.encode(meta.link).length > 99 || !ascii(meta.link))) pax.push(paxRecord("linkpath", meta.link));
  if (pax.length) {
    const body = enc.encode(pax.join(""));
    blocks.push(header("PaxHeader", { mode: 0o644, size: body.length, mtime: meta.mtime, type: "x" }), padded(body));
    name = name.slice(0, 99).replace(/[^\x20-\x7e]/g, "_");
    if (meta.link) meta = { ...meta, link: meta.link.slice(0, 99).replace(/[^\x20-\x7e]/g, "_") };
  }
  blocks.push(header(name, meta));
  if (data && data.length) blocks.push(padded(data));
}

/**
 * The contents of directory `dir` as a tar.gz (not `dir` itself).
 * @param {string} dir
 * @returns {Uint8Array}
 */
export function packDirectory(dir) {
  const blocks = [];
  const walk = (abs, rel) => {
    for (const name of readdirSync(abs).sort()) {
      const path = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path);
      const base = { mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isSymbolicLink()) {
        entry(blocks, r, { ...base, size: 0, type: "2", link: readlinkSync(path) });
      } else if (st.isDirectory()) {
        entry(blocks, r, { ...base, size: 0, type: "5" });
        walk(path, r);
      } else if (st.isFile()) {
        const data = readFileSync(path);
        entry(blocks, r, { ...base, size: data.length, type: "0" }, data);
      } else {
        throw new Error(`${path}: not a regular file, directory or symlink (an agent's tree holds only those)`);
      }
    }
  };
  walk(dir, "");
  blocks.push(new Uint8Array(2 * BLOCK)); // the end-of-archive marker
  return gzipSync(Buffer.concat(blocks));
}
