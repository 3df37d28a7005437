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
import signal
import subprocess
import time
from pathlib import Path

import pytest

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
    part = ready["network_part"]
    assert part["seccomp"] is True and part["no_new_privs"] is True
    assert part["capabilities"] == "0000000000000000" and part["landlock_abi"] >= 1
    fin = [e for e in events if e["type"] == "run.finished"][-1]
    res = json.loads((Path(fin["run_dir"]) / "result.json").read_text())
    assert res["protections"]["network_part"] == part
