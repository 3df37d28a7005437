# SPDX-License-Identifier: Apache-2.0
"""The dashboard of cordon serve, end to end in headless Chromium
(tests/browser/dashboard.mjs, driven by playwright-core): sign in, dispatch
a run and watch it finish, approve a held request and see the agent go on,
a run's stdout while it runs, the runs list's date range, the agents,
secrets and API keys pages as an owner and read-only as a member, the
dependencies page (an agent's layer not built), and the built-in policy on
a server without one. A screenshot of every page is
kept in build/browser-artifacts/ (docs/testing.md)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, ROOT, run
from upstream import Upstream

BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
ARTIFACTS = ROOT / "build" / "browser-artifacts"
TICK_SECRET = "tick-secret-value-0123456789"

TICKER = """\
echo "tick 1 token $TICK_TOKEN"
echo 'ticking on stderr' >&2
sleep 4
echo 'tick 2'
sleep 1
echo 'tick 3'
"""

HELLO = """\
echo '{"name": "reading the input"}' > "$CORDON_STEPS"
cat /workspace/input.json
echo '{"name": "writing the output"}' > "$CORDON_STEPS"
echo 'a note on stderr' >&2
printf '{"greeting": "hi"}' > /workspace/output.json
echo report > /workspace/out/report.txt
"""

# POSTs to the upstream through the proxy; the policy holds the request
# until someone approves it.
DEPLOYER = """\
import json, os, urllib.request
inp = json.load(open("/workspace/input.json"))
steps = open(os.environ["CORDON_STEPS"], "w", buffering=1)
steps.write(json.dumps({"name": "deploying", "url": inp["url"]}) + "\\n")
req = urllib.request.Request(inp["url"], data=b'{"release": "v2"}', method="POST",
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=50) as r:
    status, echo = r.status, json.load(r)
print("upstream answered", status)
steps.write(json.dumps({"name": "deployed", "status": status}) + "\\n")
json.dump({"status": status, "upstream": {"method": echo["method"], "path": echo["path"]}},
          open("/workspace/output.json", "w"))
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def health(state):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(str(state / "serve.sock"))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        s.close()


def agent(tmp_path, name, manifest, files):
    d = tmp_path / name
    d.mkdir()
    (d / "agent.json").write_text(json.dumps({"name": name, "version": "1", **manifest}))
    for fname, text in files.items():
        (d / fname).write_text(text)
    return d


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def test_dashboard_in_chromium(tmp_path, upstream):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/bootstrap installs Debian's chromium)")
    if not NODE or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("no node or tests/browser/node_modules (scripts/bootstrap runs npm ci there)")

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 deploy.test\n")
    # The operator's policy: writes to deploy.test wait for a human.
    (state / "policy.yaml").write_text(
        "version: 1\nenforce: true\napprovals:\n  timeout_seconds: 60\ndomains:\n"
        f"  - name: deploy.test\n    ports: [{upstream.port}]\n    methods: [GET, POST]\n"
        "    approval: required\n")

    r = run([CORDON, "init", "--state", state], env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("cdn_live_")
    hello = agent(tmp_path, "hello", {"entrypoint": ["/bin/sh", "/agent/run.sh"]},
                  {"run.sh": HELLO})
    deployer = agent(tmp_path, "deployer",
                     {"entrypoint": ["python3", "/agent/main.py"], "profile": "deployment",
                      "egress": {"domains": ["deploy.test"]}, "limits": {"timeout_seconds": 60}},
                     {"main.py": DEPLOYER})
    ticker = agent(tmp_path, "ticker", {"entrypoint": ["/bin/sh", "/agent/run.sh"],
                                         "required_secrets": ["TICK_TOKEN"]},
                   {"run.sh": TICKER})
    # An agent that declares dependencies (a lockfile of no package): its
    # layer's key is known, and it is not built.
    pydeps = agent(tmp_path, "pydeps", {"entrypoint": ["python3", "-c", "pass"],
                                         "dependencies": {"python": "requirements.txt"}},
                   {"requirements.txt": "# no packages\n"})
    r = run([CORDON, "secret", "set", "TICK_TOKEN", "--state", state], input=TICK_SECRET, env=env)
    assert r.returncode == 0, r.stderr
    # A run that calls another (call_agent): its page links its child's,
    # and the child's links back.
    from test_calls import agent as calls_agent
    (tmp_path / "calls").mkdir()
    caller = calls_agent(tmp_path / "calls", "caller", ["callee"])
    callee = calls_agent(tmp_path / "calls", "callee")
    for d in (hello, deployer, ticker, caller, callee, pydeps):
        r = run([CORDON, "agent", "register", d, "--state", state], env=env)
        assert r.returncode == 0, r.stderr
    r = run([CORDON, "grant", "caller", "--call", "callee", "--state", state], env=env)
    assert r.returncode == 0, r.stderr
    r = run([CORDON, "run", "--json", "--state", state, "-i", "-", "caller"], env=env,
            input=json.dumps({"calls": [{"agent": "callee"}]}))
    assert r.returncode == 0, r.stdout + r.stderr
    caller_run = json.loads(r.stdout.splitlines()[-1])["run_id"]

    port = free_port()
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [CORDON, "serve", "--state", str(state), "--listen", f"127.0.0.1:{port}",
         "--hosts", str(hosts), "--allow-private", f"127.0.0.1:{upstream.port}",
         "--drain-timeout", "5"],
        env=env, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + 10
        while health(state) is None:
            assert serve.poll() is None, "serve exited: " + log.read_text()
            assert time.monotonic() < deadline, "serve did not start: " + log.read_text()
            time.sleep(0.05)

        t0 = time.monotonic()
        b = subprocess.run(
            [NODE, str(BROWSER_DIR / "dashboard.mjs")], cwd=BROWSER_DIR, capture_output=True,
            text=True, timeout=150,
            env=dict(os.environ, CORDON_URL=f"http://127.0.0.1:{port}", CORDON_API_KEY=key,
                     CORDON_HELLO_AGENT="hello", CORDON_APPROVAL_AGENT="deployer",
                     CORDON_TICKER_AGENT="ticker", CORDON_TICKER_SECRET=TICK_SECRET,
                     CORDON_CALLER_RUN=caller_run, CORDON_DEPS_AGENT="pydeps",
                     CORDON_UPSTREAM_URL=f"http://deploy.test:{upstream.port}/deploy",
                     CORDON_ARTIFACTS=str(ARTIFACTS),
                     CORDON_EVIDENCE=str(tmp_path / "pack.tar.gz"), CHROMIUM=CHROMIUM))
        print(b.stdout)
        took = time.monotonic() - t0
        assert b.returncode == 0, (b.stdout + b.stderr + "\nserve:\n" + log.read_text())[-6000:]
        # A screenshot of every page, kept for CI.
        for name in ("01-signin", "02-run", "03-policy", "04-run-live", "05-runs-range",
                     "06-agents", "07-secrets", "08-keys-created", "09-keys", "09b-schedules",
                     "10-member-secrets", "11-member-approvals", "12-member-usage",
                     "13-member-deps"):
            png = (ARTIFACTS / (name + ".png")).read_bytes()
            assert len(png) > 10000 and png[:8] == b"\x89PNG\r\n\x1a\n", name
        assert took < 120, f"the browser test took {took:.1f} s"

        # The evidence pack the browser downloaded verifies.
        v = run([CORDON, "evidence", "verify", "--state", state, tmp_path / "pack.tar.gz"], env=env)
        assert v.returncode == 0, v.stdout + v.stderr

        # The upstream got the approved request, once, and nothing else.
        posts = [(m, p) for (m, p, _, _) in upstream.log]
        assert posts == [("POST", "/deploy")], posts
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        rc = serve.wait(timeout=40)
    assert rc == 0, log.read_text()
    assert "stopped" in log.read_text()
    assert key not in log.read_text()
    assert TICK_SECRET not in log.read_text()


def test_dashboard_shows_the_builtin_policy(tmp_path):
    """On a server without STATE/policy.yaml the policy page says the
    built-in policy is in force and shows it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/bootstrap installs Debian's chromium)")
    if not NODE or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("no node or tests/browser/node_modules (scripts/bootstrap runs npm ci there)")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    r = run([CORDON, "init", "--state", state], env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    port = free_port()
    log = tmp_path / "serve.log"
    serve = subprocess.Popen([CORDON, "serve", "--state", str(state), "--listen",
                              f"127.0.0.1:{port}", "--drain-timeout", "1"],
                             env=env, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + 10
        while health(state) is None:
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        b = subprocess.run(
            [NODE, str(BROWSER_DIR / "dashboard.mjs")], cwd=BROWSER_DIR, capture_output=True,
            text=True, timeout=60,
            env=dict(os.environ, CORDON_URL=f"http://127.0.0.1:{port}", CORDON_API_KEY=key,
                     CORDON_SCENARIO="builtin", CORDON_ARTIFACTS=str(ARTIFACTS),
                     CHROMIUM=CHROMIUM))
        print(b.stdout)
        assert b.returncode == 0, (b.stdout + b.stderr)[-4000:]
        assert (ARTIFACTS / "policy-builtin.png").stat().st_size > 10000
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
