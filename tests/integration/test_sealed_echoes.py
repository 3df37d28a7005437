# SPDX-License-Identifier: Apache-2.0
"""A sealed secret's scope answering with the value, and symlinks in agent
trees, attacked through the real binary (the second adversarial review of
issue 12's work). An upstream in the secret's scope echoes the value it was
sent in every part of a response (reason phrase, header names, 1xx heads,
trailers, chunks, a close-delimited body, cut short) and stores what it is
sent (a storage API read back in halves, as a zip, through another host):
the agent must never end up holding the value. Agent trees with links that
escape, and a directory swapped for a link while it is registered, must
never expose a host file."""
import base64
import json
import os
import socket
import subprocess
import tarfile
import io
import threading
import time
from pathlib import Path

import pytest

from conftest import CORDON, run
from test_egress_attacks import SEALED, sealed_env, sealed_manifest
from test_run_egress import Env


# ------------------------------------------------------------ sealed echoes

class Hostile:
    """A raw-socket upstream in the secret's scope. It answers each request
    by its path, echoing the X-Api-Key it received (the value: cordon
    swapped it in) in various places and forms. It also stores POST bodies
    (a storage API) and serves them back with Range support."""
    store = {}

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                hdrs = {}
                for l in lines[1:]:
                    k, v = l.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
                n = int(hdrs.get("content-length", "0"))
                while len(buf) < n:
                    buf += c.recv(65536)
                body, buf = buf[:n], buf[n:]
                c.sendall(self.answer(method, path, hdrs, body))
        except OSError:
            pass
        finally:
            c.close()

    def answer(self, method, path, h, body):
        v = h.get("x-api-key", "").encode("latin-1")
        def ok(b, extra=b"", status=b"200 OK"):
            return (b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n" + extra +
                    b"Content-Length: %d\r\n\r\n" % len(b) + b)
        if path == "/reason":
            # an error whose reason phrase names the rejected key
            return ok(b"no", status=b"401 invalid key " + v)
        if path == "/hname":
            # the key as a header name (a debug header per credential)
            return ok(b"ok", extra=b"X-Seen-" + v + b": 1\r\n")
        if path == "/truncated":
            # an error page that shows the key, truncated for display
            return ok(b"invalid key '" + v[:-2] + b"...'")
        if path == "/early":
            # 103 Early Hints with the value in a header, then the final
            return (b"HTTP/1.1 103 Early Hints\r\nLink: <" + v + b">\r\n\r\n" + ok(b"fine"))
        if path == "/trailer":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-K\r\n\r\n"
                    b"3\r\nabc\r\n0\r\nX-K: " + v + b"\r\n\r\n")
        if path == "/split":
            # the value across many chunks, deep into a large body
            pre = b"x" * 5000 + v + b"y" * 5000
            out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            for i in range(0, len(pre), 3):
                out += b"%x;e=1\r\n%s\r\n" % (len(pre[i:i + 3]), pre[i:i + 3])
            return out + b"0\r\n\r\n"
        if path == "/close10":
            # HTTP/1.0, body delimited by the close, value at the very end
            return b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 3000 + v
        if path == "/b32":
            return ok(base64.b32encode(v))
        if path == "/utf16":
            return ok(v.decode().encode("utf-16-le"))
        if path == "/store":
            Hostile.store["k"] = body
            return ok(b"stored")
        if path == "/blob":
            data = Hostile.store.get("k", b"")
            rng = h.get("range")
            if rng:
                a, b = rng.split("=")[1].split("-")
                a, b = int(a), int(b)
                part = data[a:b + 1]
                return ok(part, status=b"206 Partial Content",
                          extra=b"Content-Range: bytes %d-%d/%d\r\n" % (a, b, len(data)))
            return ok(data)
        if path == "/blob.zip":
            import zipfile
            z = io.BytesIO()
            with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
                f.writestr("k.txt", Hostile.store.get("k", b""))
            return ok(z.getvalue(), extra=b"Content-Type: application/zip\r\n")
        return ok(b"?")


ECHO_AGENT = r'''
import json, os, socket, io, zipfile, base64
port = int(open("/agent/port").read().strip())
key = os.environ["API_KEY"]                      # the placeholder
def raw(reqs, host="llm.test"):
    """Requests through the proxy on one connection; the raw bytes back."""
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    data = b""
    for i, (method, path, hdrs, body) in enumerate(reqs):
        last = i == len(reqs) - 1
        h = "".join("%s: %s\r\n" % kv for kv in hdrs.items())
        s.sendall(("%s http://%s:%d%s HTTP/1.1\r\nHost: %s:%d\r\n%s%sContent-Length: %d\r\n\r\n"
                   % (method, host, port, path, host, port, h,
                      "Connection: close\r\n" if last else "", len(body))).encode() + body)
    s.settimeout(3)
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    except Exception:
        pass
    s.close()
    return data.decode("latin-1")
out = {"key": key}
k = {"X-Api-Key": key}
for p in ("/reason", "/hname", "/truncated", "/early", "/trailer", "/split", "/close10",
          "/b32", "/utf16"):
    out[p] = raw([("GET", p, k, b"")])
# A storage API in scope: the placeholder in a body is swapped to the value
# on the way in; read back in two halves, or as a zip archive.
raw([("POST", "/store", {}, key.encode())])
half = len(key) // 2
a = raw([("GET", "/blob", {"Range": "bytes=0-%d" % (half - 1)}, b"")])
b = raw([("GET", "/blob", {"Range": "bytes=%d-%d" % (half, len(key) - 1)}, b"")])
out["range"] = a.split("\r\n\r\n", 1)[-1] + b.split("\r\n\r\n", 1)[-1]
z = raw([("GET", "/blob.zip", {}, b"")]).encode("latin-1").split(b"\r\n\r\n", 1)[-1]
try:
    out["zip"] = zipfile.ZipFile(io.BytesIO(z)).read("k.txt").decode()
except Exception as e:
    out["zip"] = "error " + str(e)
# The same storage through a host of the policy that is not the scope.
out["other_host"] = raw([("GET", "/blob", {}, b"")], host="other.test").split("\r\n\r\n", 1)[-1]
# everything reversed: no literal copy of anything in output.json
json.dump({k2: v[::-1].encode("latin-1", "replace").hex() for k2, v in out.items()}, open("/workspace/output.json", "w"))
'''


@pytest.fixture(scope="module")
def echo_result(tmp_path_factory):
    srv = Hostile()
    tmp = tmp_path_factory.mktemp("echo")

    class Up:
        port = srv.port
    renv = Env(tmp, Up)
    sealed_env(renv)
    d = renv.agent("echo", sealed_manifest(), ECHO_AGENT)
    (d / "port").write_text(str(Up.port))
    r, events = renv.run(d)
    assert r.returncode == 0, r.stderr
    res, _ = renv.result(events)
    out = {k: bytes.fromhex(v).decode("latin-1")[::-1] for k, v in res["output"].items()}
    srv.sock.close()
    return out, events


def decoded_forms(s):
    """What the agent can trivially recover from what it holds."""
    forms = [s]
    for dec in (base64.b32decode,):
        for tok in s.split():
            try:
                forms.append(dec(tok.encode()).decode("latin-1"))
            except Exception:
                pass
    try:
        body = s.split("\r\n\r\n", 1)[-1]
        forms.append(body.encode("latin-1").decode("utf-16-le", "ignore"))
    except Exception:
        pass
    return forms


def holds_value(s, minimum=None):
    """The agent holds the value, or all but `minimum` bytes of it."""
    for f in decoded_forms(s):
        if SEALED in f:
            return True
        if minimum and SEALED[:-minimum] in f:
            return True
    return False


@pytest.mark.parametrize("probe", ["/reason", "/hname"])
def test_value_in_status_line_or_header_name_is_swapped_or_cut(echo_result, probe):
    """The reason phrase and the header names are swapped back and scanned
    too, not only the header values."""
    out, _ = echo_result
    assert SEALED not in out[probe], out[probe][:200]


def test_truncated_echo_does_not_give_all_but_two_bytes(echo_result):
    """An echo of most of the value (cut short for display) is found by
    overlapping pieces of it and cut: all but 2 bytes is all but a guess."""
    out, _ = echo_result
    assert not holds_value(out["/truncated"], minimum=2), out["/truncated"][:200]


@pytest.mark.parametrize("probe", ["/early", "/trailer", "/split", "/close10"])
def test_framing_variants_hold(echo_result, probe):
    """Held: 1xx heads are swapped, trailers are dropped, chunk-split and
    close-delimited values are swapped back."""
    out, _ = echo_result
    assert SEALED not in out[probe], out[probe][:300]


@pytest.mark.parametrize("probe", ["range", "zip", "other_host"])
def test_store_then_read_back(echo_result, probe):
    """The value is swapped into credential headers only (unless the
    manifest's "in" says more), so an in-scope storage API is sent the
    placeholder in a body, and the agent reads back only that: in halves
    (Range), compressed (a zip), or through another allowed host."""
    out, _ = echo_result
    assert SEALED not in out[probe], (probe, "agent reassembled the value")


# ------------------------------------------------------------------ symlinks

def _register(tmp, d):
    st = tmp / "st"
    st.mkdir(mode=0o700, exist_ok=True)
    return run([CORDON, "agent", "register", str(d)], env=dict(os.environ, CORDON_STATE=str(st)))


@pytest.mark.parametrize("links", [
    {"a/up": "..", "out": "a/up/.."},                      # leaves through another link
    {"a/b/up2": "../..", "out": "a/b/up2/x/../../etc"},    # up to root, then dangling/leaving
    {"d": "a/b", "out": "d/../../.."},                     # .. after a link to a directory
    {"l1": "l2", "l2": "l1"},                              # loop
    {"x": "a/b/" + "/".join([".."] * 3)},                  # direct escape through dirs
    {"a/b/f": "../../agent.json/."},                       # below a file
])
def test_escaping_links_are_refused(tmp_path, links):
    d = tmp_path / "ag"
    (d / "a" / "b").mkdir(parents=True)
    (d / "agent.json").write_text(json.dumps({"name": "lk", "version": "1",
                                              "entrypoint": ["true"]}))
    for k, v in links.items():
        (d / k).symlink_to(v)
    r = _register(tmp_path, d)
    assert r.returncode != 0, r.stdout


def test_swapping_a_directory_for_a_link_during_register_never_exposes_host_files(tmp_path):
    """TOCTOU: sub/ is swapped with a symlink to a host directory in a loop
    while `cordon run DIR` snapshots it; the run must never see the marker."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "m").write_text("HOSTMARKER-9f2c")
    d = tmp_path / "ag"
    (d / "sub").mkdir(parents=True)
    for i in range(200):
        (d / "sub" / ("f%d" % i)).write_text("x")
    (d / "sub" / "m").write_text("inside")
    (d / "agent.json").write_text(json.dumps({"name": "lk", "version": "1",
                                              "entrypoint": ["sh", "-c", "cat /agent/sub/m"]}))
    stop = threading.Event()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "alt").symlink_to(host)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    swaps = [0]

    def swap():
        a, b = str(d / "sub").encode(), str(outside / "alt").encode()
        while not stop.is_set():
            if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
                swaps[0] += 1
    t = threading.Thread(target=swap, daemon=True)
    t.start()
    st = tmp_path / "st"
    st.mkdir(mode=0o700)
    seen = []
    try:
        for _ in range(25):
            r = run([CORDON, "run", str(d)], env=dict(os.environ, CORDON_STATE=str(st)))
            seen.append(r.stdout + r.stderr)
    finally:
        stop.set()
        t.join()
    assert swaps[0] > 0
    outcomes = {("HOSTMARKER" in s, "inside" in s) for s in seen}
    print(swaps[0], outcomes, [s[-160:] for s in seen[:3]])
    assert not any("HOSTMARKER" in s for s in seen)
