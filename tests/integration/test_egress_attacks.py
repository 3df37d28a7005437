# SPDX-License-Identifier: Apache-2.0
"""A hostile agent attacks the host half of the egress boundary from inside
its sandbox: the engine that serves it must survive every connection
lifecycle, run confined, never hold more than it needs, and let no secret
out in any encoding.

Each test drives the real `cordon exec --net proxy` or `cordon run`; the
sanitizer pass of `make test` runs them against the ASan build, where a
use-after-free in the engine aborts the network part."""
import json
import os
import textwrap

import pytest

from conftest import CORDON, run
from test_egress import Egress, eg, hosts, upstream  # noqa: F401 (fixtures)

# A program the sandbox runs: it attacks the proxy with `attack`, then
# checks the engine still answers a plain request on a new connection.
LIFECYCLE = r"""
import socket, sys, time
PROXY = ("127.0.0.1", 3128)
host = sys.argv[1]

def attack(data, pause=0.15, chunk=None, shut=False):
    s = socket.create_connection(PROXY, timeout=10)
    if chunk:
        # small writes through the head and the first inspection window,
        # then the rest at once
        cut = min(len(data), 1400)
        for i in range(0, cut, chunk):
            s.sendall(data[i:min(i + chunk, cut)])
            time.sleep(0.001)
        s.sendall(data[cut:])
    else:
        s.sendall(data)
    time.sleep(pause)
    if shut:
        s.shutdown(socket.SHUT_WR)
        time.sleep(pause)
    s.close()

def alive():
    s = socket.create_connection(PROXY, timeout=10)
    s.sendall(b"GET http://%s/alive HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
              % (host.encode(), host.encode()))
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    return data.split(b"\r\n")[0].decode()

post = b"POST http://%s/p HTTP/1.1\r\nHost: %s\r\n" % (host.encode(), host.encode())
CASES = {
    # the reported crash: a Content-Length body cut short, then closed
    "short_body": post + b"Content-Length: 10000\r\n\r\n" + b"x" * 100,
    # a credential split over small writes, in a body that is still coming
    "split_credential": post + b"Content-Length: 10000\r\n\r\n" + b"a" * 600
        + b"key=AKIAQWERTYUIOPASDFGH&more",
    # a credential that arrives in a later write of the body
    "late_credential": post + b"Content-Length: 100000\r\n\r\n" + b"b" * 70000
        + b" ghp_" + b"A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8" + b"c" * 10,
    # a malformed chunk size after good chunks
    "bad_chunk": post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    "chunk_then_close": post + b"Transfer-Encoding: chunked\r\n\r\n400\r\n" + b"y" * 700,
    "head_only": b"GET http://%s/x HTTP/1.1\r\nHost: " % host.encode(),
    "body_half_close": post + b"Content-Length: 50\r\n\r\n" + b"z" * 10,
    "pipelined": (b"GET http://%s/a HTTP/1.1\r\nHost: %s\r\n\r\n" % (host.encode(), host.encode()))
        * 3 + post + b"Content-Length: 900\r\n\r\n" + b"w" * 520,
}
for name in sys.argv[2:]:
    for chunk in (None, 7):
        attack(CASES[name], chunk=chunk, shut=name.endswith("close"))
    print(name, alive())
"""

CASES = ["short_body", "split_credential", "late_credential", "bad_chunk", "chunk_then_close",
         "head_only", "body_half_close", "pipelined"]


def test_reported_crash_exits_with_the_commands_status(eg, upstream):
    """The reproduction from the review: before the fix the supervisor died
    (exit 139) when a connection went away with inspected body bytes held."""
    host = f"upstream.test:{upstream.port}"
    code = ("import socket,time;s=socket.create_connection(('127.0.0.1',3128));"
            f"s.sendall(b'POST http://{host}/ HTTP/1.1\\r\\nHost: {host}\\r\\n"
            "Content-Length: 10000\\r\\n\\r\\n'+b'x'*100);time.sleep(0.5);s.close()")
    r = eg.run("python3", "-c", code, opts=eg.opts("--allow", host))
    assert r.returncode == 0, (r.returncode, r.stderr)


def test_engine_survives_every_connection_lifecycle(eg, upstream, tmp_path):
    """Open, partial head or body, credentials held back, malformed chunks,
    half-close, pipelining: after each, the engine still serves."""
    host = f"upstream.test:{upstream.port}"
    prog = tmp_path / "lifecycle.py"
    prog.write_text(LIFECYCLE)
    r = eg.run("python3", "/t/lifecycle.py", host, *CASES,
               opts=eg.opts("--allow", host, "--ro", f"{prog}:/t/lifecycle.py"), timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    lines = r.stdout.split("\n")
    for name in CASES:
        assert f"{name} HTTP/1.1 200 OK" in lines, (name, r.stdout, r.stderr)
