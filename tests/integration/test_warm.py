# SPDX-License-Identifier: Apache-2.0
"""The warm pool (docs/exec.md, "Warm sandboxes"; serve --warm-pool): runs
through the API are handed to `cordon run --standby` processes started
ahead, each with a warm sandbox; they run like cold ones (secrets, redaction,
limits, outputs), the pool refills, a pool of 0 starts every run cold, and
nothing of the pool outlives the server."""
import json
import os
import signal
import subprocess
import time

from conftest import CORDON, wait_until
from test_metrics import parse, unix_get, value
from test_serve import SECRET, Server, agent


def standbys(state, parent=None):
    """pids of the `cordon run --standby` processes of the server on state
    (children of parent when given); their sandboxes' pid 1, a copy of
    them, counts too unless a parent is given."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"--standby" in cmd and os.path.basename(cmd[0].decode()).startswith("cordon") \
                and str(state).encode() in cmd and (parent is None or ppid == parent):
            out.append(int(p))
    return out


def metrics(srv):
    st, _, body = unix_get(srv.state / "serve.sock", "/metrics")
    assert st == 200
    return parse(body)


def serve(tmp_path, pool):
    s = Server(tmp_path, extra=["--warm-pool", str(pool)])
    r = s.cli("init")
    assert r.returncode == 0, r.stderr
    s.owner = r.stdout.strip().splitlines()[-1]
    hello = agent(tmp_path, "hello",
                  'echo "hi $SRV_TOKEN"; cat /workspace/input.json > /workspace/output.json\n'
                  'head -c 100000000 /dev/zero | tail -c 1 >/dev/null; echo mem-ok\n'
                  'echo report > /workspace/out/report.txt\n',
                  required_secrets=["SRV_TOKEN"], limits={"mem": "64m"})
    assert s.cli("agent", "register", str(hello)).returncode == 0
    assert s.cli("secret", "set", "SRV_TOKEN", input=SECRET).returncode == 0
    s.start()
    return s


def test_api_runs_start_warm_and_the_pool_refills(tmp_path):
    srv = serve(tmp_path, 2)
    try:
        assert wait_until(lambda: value(metrics(srv), "cordon_warm_pool_size") == 2, 20)
        for n in range(3):
            # each run finds the pool full again, so each is warm
            assert wait_until(lambda: value(metrics(srv), "cordon_warm_pool_size") == 2, 20)
            st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner,
                                  body={"agent": "hello", "input": {"n": n}})
            assert st == 202, j
            rec = srv.wait_final(srv.owner, j["id"])
            assert rec["status"] == "succeeded", rec
            res = rec["result"]
            assert res["protections"]["start"] == "warm", res["protections"]
            # what a cold run does, the warm one did: input, output, artifacts
            assert res["output"] == {"n": n}
            assert [a["name"] for a in res["artifacts"]] == ["report.txt"]
            # its own secret, redacted in what it printed
            st, _, out, _ = srv.req("GET", f"/v1/runs/{j['id']}/stdout", srv.owner)
            assert b"[REDACTED:SRV_TOKEN]" in out and SECRET.encode() not in out
            assert b"mem-ok" in out
        m = metrics(srv)
        assert value(m, "cordon_runs_dispatched_total", start="warm") == 3
        assert value(m, "cordon_runs_dispatched_total", start="cold") == 0
        assert len(standbys(srv.state, srv.proc.pid)) == 2
    finally:
        assert srv.stop() == 0
    # the standbys left with the server, and their sandboxes with them
    assert wait_until(lambda: not standbys(srv.state), 10), standbys(srv.state)


def test_a_warm_run_gets_its_own_limits(tmp_path):
    """The cgroup made ahead gets the run's memory limit before the run
    starts: a run over it is killed out of memory, as a cold one."""
    srv = serve(tmp_path, 1)
    try:
        big = agent(tmp_path, "big", "head -c 200m /dev/zero | tail -c 1 > /dev/null\n"
                    "python3 -c 'b = bytearray(120 << 20); print(len(b))'\n",
                    limits={"mem": "64m"})
        assert srv.cli("agent", "register", str(big)).returncode == 0
        assert wait_until(lambda: value(metrics(srv), "cordon_warm_pool_size") == 1, 20)
        st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "big"})
        assert st == 202, j
        rec = srv.wait_final(srv.owner, j["id"])
        assert rec["result"]["protections"]["start"] == "warm"
        assert rec["status"] == "oom", rec
    finally:
        assert srv.stop() == 0


def test_a_pool_of_zero_starts_every_run_cold(tmp_path):
    srv = serve(tmp_path, 0)
    try:
        st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "hello"})
        rec = srv.wait_final(srv.owner, j["id"])
        assert rec["status"] == "succeeded"
        # (CORDON_SANDBOX_WARM=1, the suites' warm pass, makes every sandbox warm)
        cold = "warm" if os.environ.get("CORDON_SANDBOX_WARM") == "1" else "cold"
        assert rec["result"]["protections"]["start"] == cold
        assert not standbys(srv.state)
        m = metrics(srv)
        assert value(m, "cordon_warm_pool_size") == 0
        assert value(m, "cordon_runs_dispatched_total", start="cold") == 1
    finally:
        assert srv.stop() == 0


def test_a_standby_refuses_a_claim_that_is_not_one(tmp_path):
    """--standby reads one line "ID WORKSPACE AGENT"; anything else is an
    error naming it, and an empty stdin (the pool closed) is a quiet exit."""
    state = tmp_path / "state"
    env = dict(os.environ, CORDON_STATE=str(state))
    for line, code, msg in ((b"", 0, ""), (b"run_1 default\n", 125, "expected"),
                            (b"../x default hello\n", 125, "expected"),
                            (b"run_1 Bad hello\n", 125, "expected"),
                            (b"run_1 default hello", 125, "without a newline"),
                            (b"run_1 default hello\nrun_2 default hello\n", 125, "one line"),
                            (b"run_1 default hello w-1 extra\n", 125, "expected"),
                            (b"run_1 default hello bad/worker\n", 125, "expected"),
                            (b"x" * 600, 125, "longer than")):
        r = subprocess.run([CORDON, "run", "--standby", "-q"], input=line, env=env,
                           capture_output=True, timeout=60)
        assert r.returncode == code, (line, r.stderr)
        assert msg.encode() in r.stderr, (line, r.stderr)
    r = subprocess.run([CORDON, "run", "--standby", "hello"], env=env, capture_output=True,
                       timeout=60)
    assert r.returncode == 125 and b"no AGENT" in r.stderr, r.stderr
