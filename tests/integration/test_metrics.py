# SPDX-License-Identifier: Apache-2.0
"""cordon serve's /metrics (docs/metrics.md): the real server runs a few
runs, and its scrapes count them right, pass `promtool check metrics`, and
name workspaces only where the operator allowed it."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import CORDON, run, wait_until
from test_serve import Server, agent, free_port
from upstream import Upstream

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN = "metrics-token-0123456789abcdef"

# One request the proxy lets through and one it blocks.
PROBE = r'''
import json, os, urllib.request, urllib.error
inp = json.load(open("/workspace/input.json"))
proxy = os.environ.get("HTTP_PROXY") or os.environ["http_proxy"]
# Straight to the proxy: NO_PROXY names the loopback, the upstream's address.
for k in ("no_proxy", "NO_PROXY"):
    os.environ.pop(k, None)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
out = {}
for name, url in inp["urls"].items():
    try:
        with opener.open(url, timeout=10) as r:
            out[name] = r.status
    except urllib.error.HTTPError as e:
        out[name] = e.code
json.dump(out, open("/workspace/output.json", "w"))
'''


def promtool_check(text):
    """`promtool check metrics` on a scrape: a failure names what is wrong.
    promtool comes with Debian's prometheus package (scripts/bootstrap);
    without it this test fails rather than passing unchecked."""
    tool = shutil.which("promtool")
    if not tool:
        pytest.fail("promtool is missing: run scripts/bootstrap (Debian's prometheus package)")
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def unix_get(sock, path):
    """GET path on a unix socket: (status, headers, body)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(sock))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body.decode()


def tcp_get(port, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, r.getheader("Content-Type"), body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): value} of a scrape's samples."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def histogram(samples, name):
    """Its buckets in order of le, and its count and sum."""
    buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in samples.items()
                      if n == name + "_bucket"), key=lambda b: b[0])
    return buckets, value(samples, name + "_count"), value(samples, name + "_sum")


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def test_metrics_count_the_runs(tmp_path, upstream):
    """Three runs in two workspaces (one failing, one with egress allowed
    and blocked): the counts by status, the histograms and the egress sums
    are what the records say, on serve.sock and on --metrics-listen with
    its token; both scrapes pass promtool."""
    mport = free_port()
    token_file = tmp_path / "metrics.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    s = Server(tmp_path, extra=["--allow-private", f"127.0.0.1:{upstream.port}",
                                "--metrics-listen", f"127.0.0.1:{mport}",
                                "--metrics-token-file", str(token_file)])
    (s.state / "policy.yaml").write_text(
        f"version: 1\ndomains:\n  - name: 127.0.0.1\n    ports: [{upstream.port}]\n")
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.other = s.cli("keys", "create", "eve", "--role", "owner", ws="other").stdout.strip().splitlines()[-1]
    probe = agent(tmp_path, "probe", "", entrypoint=["python3", "/agent/main.py"],
                  profile="deployment")
    (probe / "main.py").write_text(PROBE)
    bad = agent(tmp_path, "bad", "echo failing >&2; exit 3\n")
    ok = agent(tmp_path, "ok", "echo fine\n")
    for d, ws in ((probe, None), (bad, None), (ok, "other")):
        assert s.cli("agent", "register", str(d), ws=ws).returncode == 0
    started = time.time()
    s.start()
    ready = time.time()
    try:
        urls = {"allowed": f"http://127.0.0.1:{upstream.port}/x",
                "blocked": "http://blocked.example/"}
        ids = []
        for key, ag, inp in ((s.owner, "probe", {"urls": urls}), (s.owner, "bad", {}),
                             (s.other, "ok", {})):
            st, j, _, _ = s.req("POST", "/v1/runs", key, body={"agent": ag, "input": inp})
            assert st == 202, j
            ids.append((key, j["id"]))
        recs = [s.wait_final(key, rid) for key, rid in ids]
        assert [r["status"] for r in recs] == ["succeeded", "failed", "succeeded"], recs
        assert recs[0]["result"]["output"] == {"allowed": 200, "blocked": 403}, recs[0]["result"]
        eg = recs[0]["result"]["egress"]
        assert (eg["allowed"], eg["blocked"]) == (1, 1), eg
        assert eg["allowed_bytes"] > 0 and eg["blocked_bytes"] >= 0, eg

        # The dispatcher counts a run once it has reaped its process, a
        # moment after the record is final.
        for _ in range(50):
            st, headers, text = unix_get(s.state / "serve.sock", "/metrics")
            assert st == 200 and headers["content-type"] == CONTENT_TYPE, headers
            m = parse(text)
            if value(m, "cordon_run_duration_seconds_count") == 3:
                break
            time.sleep(0.1)
        promtool_check(text)

        runs = {(dict(l)["workspace"], dict(l)["status"]): v for (n, l), v in m.items()
                if n == "cordon_runs_total"}
        assert {k: v for k, v in runs.items() if v} == {
            ("default", "succeeded"): 1, ("default", "failed"): 1, ("other", "succeeded"): 1}
        # Every final status has its series from the start, for rate().
        assert runs[("other", "cancelled")] == 0 and runs[("default", "timeout")] == 0
        assert value(m, "cordon_queue_depth") == 0
        assert value(m, "cordon_runs_running") == 0
        # the default pool (2) is full again, and every run came from it or not
        assert value(m, "cordon_warm_pool_size") in (0, 1, 2)
        assert value(m, "cordon_runs_dispatched_total", start="warm") + \
            value(m, "cordon_runs_dispatched_total", start="cold") == 3
        assert value(m, "cordon_lease_renewals_total") == 0
        assert value(m, "cordon_egress_requests_total", decision="allowed") == 1
        assert value(m, "cordon_egress_requests_total", decision="blocked") == 1
        for name in ("cordon_run_duration_seconds", "cordon_run_start_latency_seconds"):
            buckets, count, total = histogram(m, name)
            assert count == 3, (name, count)
            assert buckets[-1] == (float("inf"), 3)
            assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
            assert total > 0
        # Each run's duration lies in its record's span (created to finished).
        _, _, dsum = histogram(m, "cordon_run_duration_seconds")
        _, _, lsum = histogram(m, "cordon_run_start_latency_seconds")
        spans = sum(r["duration_ms"] for r in recs) / 1000
        assert dsum + lsum == pytest.approx(spans, abs=0.01), (dsum, lsum, spans)
        assert value(m, "process_open_fds") > 0
        assert value(m, "process_resident_memory_bytes") > 1 << 20
        assert started - 1 < value(m, "process_start_time_seconds") < ready + 1

        # The TCP listener: its token or nothing; with it, the same series.
        st, ctype, body = tcp_get(mport)
        assert st == 401 and "metrics token" in json.loads(body)["error"]["message"]
        st, _, _ = tcp_get(mport, token=TOKEN[:-1] + "X")
        assert st == 401
        st, ctype, body = tcp_get(mport, token=TOKEN)
        assert st == 200 and ctype == CONTENT_TYPE
        promtool_check(body)
        tm = parse(body)
        assert value(tm, "cordon_runs_total", workspace="other", status="succeeded") == 1
        assert value(tm, "cordon_run_duration_seconds_count") == 3
        # Only /metrics there: the API is not on this port.
        st, _, _, _ = s.req("GET", "/v1/whoami", s.owner)
        assert st == 200
        c = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
        c.request("GET", "/v1/whoami", headers={"Authorization": f"Bearer {s.owner}"})
        assert c.getresponse().status == 404
        c.close()
        assert TOKEN not in (tmp_path / "serve.log").read_text()
    finally:
        s.stop(signal.SIGKILL)


def test_metrics_listen_without_a_token_names_no_workspace(tmp_path):
    """Without --metrics-token-file, whoever reaches --metrics-listen gets
    the server-wide sums: a workspace's name is never in the scrape."""
    mport = free_port()
    s = Server(tmp_path, extra=["--metrics-listen", f"127.0.0.1:{mport}"])
    s.cli("init")
    tenant = s.cli("keys", "create", "t", "--role", "owner", ws="acme-secret-project")
    key = tenant.stdout.strip().splitlines()[-1]
    assert s.cli("agent", "register", str(agent(tmp_path, "ok", "echo fine\n")),
                 ws="acme-secret-project").returncode == 0
    s.start()
    try:
        st, j, _, _ = s.req("POST", "/v1/runs", key, body={"agent": "ok"})
        assert st == 202, j
        assert s.wait_final(key, j["id"])["status"] == "succeeded"
        for _ in range(50):
            st, ctype, body = tcp_get(mport)
            m = parse(body)
            if value(m, "cordon_runs_total", status="succeeded") == 1:
                break
            time.sleep(0.1)
        assert st == 200 and ctype == CONTENT_TYPE
        promtool_check(body)
        assert value(m, "cordon_runs_total", status="succeeded") == 1
        assert value(m, "cordon_run_duration_seconds_count") == 1
        assert "acme" not in body and "workspace" not in body, body
        # A token is not asked for, and one sent changes nothing.
        st, _, body2 = tcp_get(mport, token="whatever-token-0123456789")
        assert st == 200 and "workspace" not in body2
        # serve.sock (mode 0600, the server's user) has the names.
        st, _, text = unix_get(s.state / "serve.sock", "/metrics")
        assert 'cordon_runs_total{workspace="acme-secret-project",status="succeeded"} 1' in text
        assert oct((s.state / "serve.sock").stat().st_mode & 0o777) == "0o600"
    finally:
        s.stop(signal.SIGKILL)


def test_metrics_token_file_is_checked(tmp_path):
    """A token file others can read, a short token, a FIFO, or a token
    without a listener: serve refuses to start and says why."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    f = tmp_path / "token"
    port = f"127.0.0.1:{free_port()}"

    def serve(*args):
        return run([CORDON, "serve", "--listen", f"127.0.0.1:{free_port()}", *args],
                   env=env, timeout=30)

    f.write_text(TOKEN)
    f.chmod(0o644)
    r = serve("--metrics-listen", port, "--metrics-token-file", str(f))
    assert r.returncode == 125 and "mode 644 lets others read" in r.stderr, r.stderr
    f.write_text("short\n")
    f.chmod(0o600)
    r = serve("--metrics-listen", port, "--metrics-token-file", str(f))
    assert r.returncode == 125 and "16 to 1024" in r.stderr, r.stderr
    assert "short" not in r.stderr  # the token is never shown
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    r = serve("--metrics-listen", port, "--metrics-token-file", str(fifo))  # must not hang
    assert r.returncode == 125 and "not a regular file" in r.stderr, r.stderr
    r = serve("--metrics-token-file", str(f))
    assert r.returncode == 125 and "needs --metrics-listen" in r.stderr, r.stderr
    r = serve("--metrics-listen", "localhost:x")
    assert r.returncode == 125 and "--metrics-listen: expected" in r.stderr, r.stderr


def ppid_of(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def run_pid(serve_pid, payload):
    """The process serve runs a run in (started for it, or a standby of the
    warm pool that took it): serve's child above the run's payload, found by
    its command line."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv[:len(payload)] != payload:
            continue
        pid = int(p)
        while pid > 1 and ppid_of(pid) != serve_pid:
            pid = ppid_of(pid)
        if pid > 1:
            return pid
    return None


def test_a_run_whose_process_dies_is_an_error_at_once(tmp_path):
    """A run's process killed mid-run (SIGKILL: it writes no end) is marked
    error by serve as soon as it is reaped, not at serve's next start, and
    is counted so: the dashboard and the metrics stop calling it running."""
    s = Server(tmp_path)
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    assert s.cli("agent", "register", str(agent(tmp_path, "sleeper", "echo start; sleep 30\n"))).returncode == 0
    s.start()
    try:
        st, j, _, _ = s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})
        assert st == 202, j
        rid = j["id"]
        assert s.wait_running(s.owner, rid)
        assert wait_until(lambda: run_pid(s.proc.pid, [b"sleep", b"30"]), 10)
        pid = run_pid(s.proc.pid, [b"sleep", b"30"])
        assert pid, "no run process"
        os.kill(pid, signal.SIGKILL)
        rec = s.wait_final(s.owner, rid, timeout=10)
        assert rec["status"] == "error" and "supervisor died" in rec["error"], rec
        for _ in range(50):
            m = parse(unix_get(s.state / "serve.sock", "/metrics")[2])
            if value(m, "cordon_runs_total", workspace="default", status="error") == 1:
                break
            time.sleep(0.1)
        assert value(m, "cordon_runs_total", workspace="default", status="error") == 1
        assert value(m, "cordon_runs_running") == 0
        assert value(m, "cordon_run_duration_seconds_count") == 1
    finally:
        s.stop(signal.SIGKILL)
