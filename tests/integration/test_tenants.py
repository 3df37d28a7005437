# SPDX-License-Identifier: Apache-2.0
"""cordon serve under hostile tenants (issue 10): a workspace's policy only
narrows the operator's, one tenant cannot starve another, one event
contract. Each test attacks the real server the way the review did."""
import json
import signal
import socket
import time

import pytest

from conftest import CORDON, run
from test_serve import GZ, Server, agent, tgz
from upstream import Upstream

YAML = {"Content-Type": "application/yaml"}

# Reads a host loopback service and serve's own API through the proxy
# (the sandbox has no other way out), and reports what it got.
PROBE = r'''
import json, os, urllib.request, urllib.error
inp = json.load(open("/workspace/input.json"))
# Straight to the proxy: NO_PROXY names the loopback, which is the point.
proxy = os.environ.get("HTTP_PROXY") or os.environ["http_proxy"]
for k in ("no_proxy", "NO_PROXY"):
    os.environ.pop(k, None)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
out = {}
for name, url in inp["urls"].items():
    try:
        with opener.open(url, timeout=10) as r:
            out[name] = [r.status, r.read(200).decode("latin-1")]
    except urllib.error.HTTPError as e:
        out[name] = [e.code, e.read(200).decode("latin-1")]
    except OSError as e:
        out[name] = [0, str(e)]
json.dump(out, open("/workspace/output.json", "w"))
'''


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def probe_agent(tmp_path, name="probe"):
    d = tmp_path / name
    d.mkdir()
    (d / "agent.json").write_text(json.dumps({
        "name": name, "version": "1", "entrypoint": ["python3", "/agent/main.py"],
        "profile": "deployment"}))
    (d / "main.py").write_text(PROBE)
    return d


@pytest.fixture
def tenants(tmp_path):
    """A server with two workspaces: "default" (owner, member) and "other"."""
    s = Server(tmp_path)
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.member = s.cli("keys", "create", "bob", "--role", "member").stdout.strip().splitlines()[-1]
    s.other = s.cli("keys", "create", "eve", "--role", "owner", ws="other").stdout.strip().splitlines()[-1]
    assert s.cli("agent", "register", str(probe_agent(tmp_path))).returncode == 0
    s.start()
    yield s
    s.stop(signal.SIGKILL)


def probe(srv, urls, key=None):
    st, j, _, _ = srv.req("POST", "/v1/runs", key or srv.owner,
                          body={"agent": "probe", "input": {"urls": urls}})
    assert st == 202, j
    return srv.wait_final(key or srv.owner, j["id"], timeout=90)


def reached(rec, name):
    """True when the request went through to the service (any answer of its own)."""
    out = (rec.get("result") or {}).get("output") or {}
    got = out.get(name)
    return bool(got) and got[0] not in (0, 403, 407)


# ------------------------------------------------ 1. policy levels

def test_workspace_policy_cannot_widen_the_operators(tenants, upstream):
    """The reported attack: a workspace owner turns enforcement off or opens
    the SSRF guard, then an agent reads a host loopback service and serve's
    own /v1/whoami through the proxy. Both must stay out of reach."""
    srv = tenants
    urls = {"loopback": f"http://127.0.0.1:{upstream.port}/secret",
            "whoami": f"http://127.0.0.1:{srv.port}/v1/whoami"}
    attacks = [
        (b"version: 1\nenforce: false\n", "enforce", 2),
        (f"version: 1\nprivate: [127.0.0.1:{upstream.port}]\ndomains:\n"
         f"  - name: 127.0.0.1\n    ports: [{upstream.port}, {srv.port}]\n".encode(), "private", 2),
        (b"version: 1\napprovals:\n  timeout_seconds: 86400\n", "approvals", 2),
        (b"version: 1\nlimits:\n  global_requests_per_minute: 0\n",
         "limits.global_requests_per_minute", 3),
        (b"version: 1\nlimits:\n  requests_per_minute: 601\n", "limits.requests_per_minute", 3),
        (b"version: 1\ndomains:\n  - name: api.openai.com\n    requests_per_minute: 61\n",
         "domains[0].requests_per_minute", 4),
    ]
    for body, key, line in attacks:
        st, j, _, _ = srv.req("PUT", "/v1/policy", srv.owner, raw=body, headers=YAML)
        assert st == 400, (body, st, j)
        msg = j["error"]["message"]
        # names the file, the line and the key, and says why
        assert msg.startswith(f"policy.yaml:{line}: {key}:"), msg
        assert "operator" in msg, msg
    assert not (srv.state / "policies" / "default.yaml").exists()

    # A name the operator does not allow is narrowed away, not an error:
    # the answer lists it as dropped, and runs still cannot reach it.
    body = (f"version: 1\ndomains:\n  - name: 127.0.0.1\n    ports: [{upstream.port}, {srv.port}]\n"
            ).encode()
    st, j, _, _ = srv.req("PUT", "/v1/policy", srv.owner, raw=body, headers=YAML)
    assert st == 200 and j["dropped"] == ["127.0.0.1"], j
    rec = probe(srv, urls)
    assert rec["status"] == "succeeded", rec
    assert not reached(rec, "loopback") and not reached(rec, "whoami"), rec["result"]["output"]
    assert not any(p == "/secret" for _, p, _, _ in upstream.log)

    # A file from before the levels (written to disk directly) does not
    # load any more: the run fails closed, with the key and line.
    (srv.state / "policies" / "default.yaml").write_text("version: 1\nenforce: false\n")
    rec = probe(srv, urls)
    assert rec["status"] == "error", rec
    assert "policies/default.yaml:2: enforce" in rec["error"], rec["error"]
    assert not any(p == "/secret" for _, p, _, _ in upstream.log)
    st, j, _, _ = srv.req("GET", "/v1/policy", srv.member)
    assert j["effective"] is None and "enforce" in j["workspace"]["error"], j


def test_operator_policy_is_the_boundary_for_every_workspace(tmp_path, upstream):
    """With an operator policy that allows the upstream, a workspace can
    narrow it (its runs then lose it) but the other workspace keeps it."""
    s = Server(tmp_path, extra=["--allow-private", f"127.0.0.1:{upstream.port}"])
    (s.state / "policy.yaml").write_text(
        "version: 1\nlimits:\n  requests_per_minute: 100\n"
        f"domains:\n  - name: 127.0.0.1\n    ports: [{upstream.port}]\n")
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.other = s.cli("keys", "create", "eve", "--role", "owner", ws="other").stdout.strip().splitlines()[-1]
    for ws in (None, "other"):
        assert s.cli("agent", "register", str(probe_agent(tmp_path, f"probe{ws or ''}")), ws=ws).returncode == 0
    s.start()
    try:
        url = {"up": f"http://127.0.0.1:{upstream.port}/allowed"}
        st, j, _, _ = s.req("POST", "/v1/runs", s.owner, body={"agent": "probe", "input": {"urls": url}})
        rec = s.wait_final(s.owner, j["id"], timeout=90)
        assert reached(rec, "up"), json.dumps(rec)[:3000]
        # The workspace narrows: only GET to a name that is not the upstream.
        st, j, _, _ = s.req("PUT", "/v1/policy", s.owner,
                            raw=b"version: 1\nlimits:\n  requests_per_minute: 10\n"
                                b"domains:\n  - name: api.example.com\n", headers=YAML)
        assert st == 200 and j["dropped"] == ["api.example.com"], j
        st, j, _, _ = s.req("GET", "/v1/policy", s.owner)
        assert j["operator"]["source"] == "file" and "127.0.0.1" in j["operator"]["yaml"]
        names = {r["name"] for r in j["effective"]["rules"]}
        assert "127.0.0.1" not in names and "api.openai.com" in names, names
        llm = [r for r in j["effective"]["rules"] if r["name"] == "api.openai.com"][0]
        assert llm["from"]["operator"]["at"] == "built-in" and llm["from"]["workspace"]["at"] == "built-in"
        assert llm["workspace_requests_per_minute"] == 10 and llm["requests_per_minute"] == 100
        assert j["effective"]["private"] == [f"127.0.0.1:{upstream.port}"]
        st, j, _, _ = s.req("POST", "/v1/runs", s.owner, body={"agent": "probe", "input": {"urls": url}})
        rec = s.wait_final(s.owner, j["id"], timeout=90)
        assert rec["status"] == "succeeded" and not reached(rec, "up"), rec
        # The other workspace is untouched by this one's policy.
        st, j, _, _ = s.req("POST", "/v1/runs", s.other, body={"agent": "probeother", "input": {"urls": url}})
        assert reached(s.wait_final(s.other, j["id"], timeout=90), "up")
        st, j, _, _ = s.req("GET", "/v1/policy", s.other)
        assert j["workspace"] is None
        up = [r for r in j["effective"]["rules"] if r["name"] == "127.0.0.1"][0]
        assert up["from"] == {"operator": {"rule": "127.0.0.1", "group": "user", "category": "user",
                                           "at": "policy.yaml:5"}, "workspace": None}
    finally:
        assert s.stop() == 0


def test_policy_get_shows_the_builtin_policy(tenants):
    st, j, _, _ = tenants.req("GET", "/v1/policy", tenants.member)
    assert st == 200 and j["operator"]["source"] == "built-in"
    # The built-in policy as the file an operator would write; it loads.
    assert j["operator"]["yaml"].startswith("#") and "version: 1" in j["operator"]["yaml"]
    p = tenants.tmp / "builtin.yaml"
    p.write_text(j["operator"]["yaml"])
    r = run([CORDON, "exec", "--net", "proxy", "--policy", p, "--", "true"])
    assert r.returncode == 0, r.stderr
    assert j["workspace"] is None
    eff = j["effective"]
    assert eff["enforce"] is True and eff["private"] == []
    assert eff["limits"] == {"requests_per_minute": 60, "global_requests_per_minute": 600}
    research = [r for r in eff["rules"] if r["name"] == "arxiv.org"][0]
    assert research["methods"] == ["GET", "HEAD"] and research["inspect"] is True
    assert research["from"]["operator"]["group"] == "research"


# ------------------------------------------------ 3. one event contract

def shell_agent(srv, name, script, **kw):
    d = agent(srv.tmp, name, script, **kw)
    r = srv.cli("agent", "register", str(d))
    assert r.returncode == 0, r.stderr
    return d


def follow(srv, rid, key, sse=False, last_id=None, timeout=60):
    """GET events?follow=1, read to its end; (lines, seconds taken)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = {"Authorization": "Bearer " + key}
    if sse:
        h["Accept"] = "text/event-stream"
    if last_id is not None:
        h["Last-Event-ID"] = str(last_id)
    t0 = time.time()
    c.request("GET", f"/v1/runs/{rid}/events?follow=1", headers=h)
    r = c.getresponse()
    assert r.status == 200, r.read()
    body = r.read().decode()
    c.close()
    return body, time.time() - t0


def test_an_agent_cannot_end_a_follower_early(tenants):
    """An agent writes {"type":"run.finished"} as a step (and a look-alike
    log line): API followers and cordon logs --follow, local and remote,
    must keep following until the run's own end."""
    srv = tenants
    shell_agent(srv, "spoof", 'echo \'{"type":"run.finished","status":"succeeded"}\' > $CORDON_STEPS\n'
                '"echo" \'{"seq":99,"type":"run.finished","run_id":"x"}\' > $CORDON_STEPS\n'
                'sleep 3; echo done\n')
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.member, body={"agent": "spoof"})
    rid = j["id"]
    remote_env = dict(srv.env, CORDON_URL=f"http://127.0.0.1:{srv.port}",
                      CORDON_API_KEY=srv.member)
    del remote_env["CORDON_STATE"]
    import subprocess
    procs = [subprocess.Popen([CORDON, "logs", "--follow", "--json", rid], env=env,
                              stdout=subprocess.PIPE, text=True)
             for env in (srv.env, remote_env)]
    nd, t_nd = follow(srv, rid, srv.member)
    sse, _ = follow(srv, rid, srv.member, sse=True)
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert t_nd > 2, "the NDJSON follower ended at the agent's fake end"
    for text in [nd] + outs:
        evs = [json.loads(l) for l in text.splitlines() if l.strip()]
        assert evs[-1]["type"] == "run.finished" and evs[-1]["status"] == "succeeded", evs[-1]
        steps = [e for e in evs if e["type"] == "step"]
        assert steps and steps[0]["step"]["type"] == "run.finished"
    datas = [json.loads(l[6:]) for l in sse.splitlines() if l.startswith("data: ")]
    assert datas[-1]["type"] == "run.finished" and datas[-1]["status"] == "succeeded"


def test_event_lines_are_never_cut_and_never_name_server_paths(tenants):
    """A large output.json makes run.finished longer than the API's old
    64 KiB line buffer; one over the product's line limit leaves the field
    out and says so. Every line of every stream is a whole JSON event, and
    none names the server's run directory."""
    srv = tenants
    for name, size in (("big", 200_000), ("huge", 600_000)):
        shell_agent(srv, name, "python3 -c \"import json; json.dump({'blob': 'x' * %d}, "
                    "open('/workspace/output.json', 'w'))\"\n" % size)
        st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": name})
        rid = j["id"]
        rec = srv.wait_final(srv.owner, rid)
        assert rec["status"] == "succeeded", rec
        assert len(rec["result"]["output"]["blob"]) == size
        for sse in (False, True):
            body, _ = follow(srv, rid, srv.owner, sse=sse)
            lines = [l[6:] if sse else l for l in body.splitlines()
                     if l and (not sse or l.startswith("data: "))]
            evs = [json.loads(l) for l in lines]  # every line whole
            assert evs[-1]["type"] == "run.finished"
            assert str(srv.state) not in body and "run_dir" not in body
            if size < 256 * 1024:
                assert evs[-1]["output"]["blob"] == "x" * size
            else:
                assert "output" not in evs[-1] and evs[-1]["omitted"] == ["output"]
        # The record itself holds no server path, so nor does an evidence
        # pack, which carries events.ndjson as it is.
        raw = (srv.state / "runs" / rid / "events.ndjson").read_text()
        assert '"run_dir"' not in raw and str(srv.state) not in raw


def test_sse_ids_and_resume_with_last_event_id(tenants):
    srv = tenants
    shell_agent(srv, "steps", "for i in 1 2 3 4 5; do echo step$i > $CORDON_STEPS; done\n")
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "steps"})
    rid = j["id"]
    srv.wait_final(srv.owner, rid)
    sse, _ = follow(srv, rid, srv.owner, sse=True)
    ids = [int(l[4:]) for l in sse.splitlines() if l.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 8
    datas = [json.loads(l[6:]) for l in sse.splitlines() if l.startswith("data: ")]
    assert [d["seq"] for d in datas] == ids
    again, _ = follow(srv, rid, srv.owner, sse=True, last_id=4)
    assert [int(l[4:]) for l in again.splitlines() if l.startswith("id: ")] == ids[4:]
    st, _, nd, _ = srv.req("GET", f"/v1/runs/{rid}/events?after={len(ids) - 1}", srv.owner)
    assert [json.loads(l)["type"] for l in nd.decode().splitlines()] == ["run.finished"]
    st, j, _, _ = srv.req("GET", f"/v1/runs/{rid}/events", srv.owner,
                          headers={"Last-Event-ID": "x"})
    assert st == 400


MCP_FLOOD = r'''
import json, os, urllib.request
URL = os.environ["CORDON_MCP_URL"]
def post(body, session=None, token=None):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = "Bearer " + token
    if session:
        h["Mcp-Session-Id"] = session
        h["MCP-Protocol-Version"] = "2025-06-18"
    req = urllib.request.Request(URL, data=json.dumps(body).encode(), headers=h, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.headers.get("Mcp-Session-Id")
sid = post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}},
           token=os.environ["CORDON_MCP_TOKEN"])
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid)
for i in range(int(os.environ.get("N", "1500"))):
    post({"jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
          "params": {"name": "log", "arguments": {"level": "info", "message": "%d " % i + "y" * 4000}}},
         session=sid)
'''


@pytest.mark.slow
def test_mcp_log_flood_is_bounded(tenants):
    """3000 MCP log calls made 12 MiB of events in 3 s: now at most
    RUN_MAX_LOG_EVENTS log events and RUN_MAX_LOG_BYTES of messages."""
    srv = tenants
    d = agent(srv.tmp, "flood", "")
    (d / "agent.json").write_text(json.dumps({"name": "flood", "version": "1",
                                              "entrypoint": ["python3", "/agent/flood.py"],
                                              "limits": {"timeout_seconds": 120}}))
    (d / "flood.py").write_text(MCP_FLOOD)
    assert srv.cli("agent", "register", str(d)).returncode == 0
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "flood"})
    rec = srv.wait_final(srv.owner, j["id"], timeout=180)
    assert rec["status"] == "succeeded", rec
    raw = (srv.state / "runs" / j["id"] / "events.ndjson").read_text()
    logs = [json.loads(l) for l in raw.splitlines() if '"type":"log"' in l]
    assert len(logs) <= 1001
    assert logs[-1]["message"] == "log limit reached; later log messages dropped"
    assert sum(len(e["message"]) for e in logs[:-1]) <= 1 << 20
    assert len(raw) < 2 << 20


# ------------------------------------------------ 2. denial of service

def slow_conn(port, head=b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n"):
    """An unauthenticated connection that sent part of a head and waits."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head)
    return s


def closed_by_server(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_slow_clients_cannot_lock_out_loopback(tenants):
    """64 slow unauthenticated connections used to lock every other client
    on the same IP (all of loopback) out while they were held. Now loopback
    has no per-IP cap, the anonymous ones are capped server-wide with the
    oldest closed to make room, and a real client gets through at once."""
    srv = tenants
    held = [slow_conn(srv.port) for _ in range(80)]
    try:
        time.sleep(0.5)
        for _ in range(3):
            t0 = time.time()
            st, j, _, _ = srv.req("GET", "/v1/whoami", srv.member)
            assert st == 200 and time.time() - t0 < 2
        h = srv.health()["connections"]
        assert h["anonymous"] <= 64, h
        # the oldest were the ones closed
        assert closed_by_server(held[0], 2)
    finally:
        for s in held:
            s.close()


@pytest.mark.slow
def test_request_head_has_an_absolute_deadline(tenants):
    """A client that trickles its head (a byte a second: never idle long
    enough for an idle timeout) is cut off at the head deadline."""
    srv = tenants
    s = slow_conn(srv.port, b"G")
    t0 = time.time()
    closed = False
    try:
        for b in b"ET /v1/whoami HTTP/1.1\r\nX-A: " + b"a" * 40:
            if closed_by_server(s, 1.0):
                closed = True
                break
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
    finally:
        s.close()
    assert closed and 8 < time.time() - t0 < 16, time.time() - t0


def open_stream(srv, rid, key, what="events"):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"GET /v1/runs/{rid}/{what}?follow=1 HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {key}\r\n\r\n".encode())
    s.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, int(head.split(b" ", 2)[1]) if head else 0


def test_follow_streams_are_capped_per_key_and_freed_when_clients_leave(tmp_path):
    s = Server(tmp_path, extra=["--streams-per-key", "8"])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.other = s.cli("keys", "create", "ci", "--role", "member").stdout.strip().splitlines()[-1]
    s.cli("agent", "register", str(agent(tmp_path, "sleeper", "echo start; sleep 40\n")))
    s.start()
    try:
        st, j, _, _ = s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})
        rid = j["id"]
        # Event and output followers share the key's slots.
        streams = [open_stream(s, rid, s.owner, what) for what in
                   ("events", "stdout", "stderr", "events", "stdout", "events", "stderr", "events")]
        assert all(code == 200 for _, code in streams)
        for what in ("events", "stdout", "stderr"):
            extra, code = open_stream(s, rid, s.owner, what)
            assert code == 429, what
            extra.close()
        # another key has its own streams
        other, code = open_stream(s, rid, s.other)
        assert code == 200
        other.close()
        # The clients leave; their slots come back without waiting for the run.
        for sock, _ in streams:
            sock.close()
        t0 = time.time()
        while time.time() - t0 < 5:
            back, code = open_stream(s, rid, s.owner)
            back.close()
            if code == 200:
                break
            time.sleep(0.2)
        assert code == 200 and time.time() - t0 < 5
        st, _, _, _ = s.req("POST", f"/v1/runs/{rid}/cancel", s.owner)
    finally:
        assert s.stop() == 0


@pytest.mark.slow
def test_idle_follow_streams_get_keep_alives(tenants):
    """An idle follower gets a keep-alive every 15 s (an SSE comment, an
    empty NDJSON line): what tells the server a vanished client is gone."""
    srv = tenants
    shell_agent(srv, "quiet", "sleep 60\n", limits={"timeout_seconds": 120})
    rid = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "quiet"})[1]["id"]
    # (the body is chunked: an NDJSON keep-alive is a one-byte chunk)
    for accept, ka in (("text/event-stream", b": keep-alive\n\n"),
                       ("application/x-ndjson", b"\r\n1\r\n\n\r\n")):
        c = socket.create_connection(("127.0.0.1", srv.port))
        c.sendall(f"GET /v1/runs/{rid}/events?follow=1 HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n"
                  f"Authorization: Bearer {srv.owner}\r\n\r\n".encode())
        c.settimeout(20)
        got, t0 = b"", time.time()
        while ka not in got.split(b"\r\n\r\n", 1)[-1] and time.time() - t0 < 19:
            got += c.recv(4096)
        c.close()
        assert ka in got.split(b"\r\n\r\n", 1)[-1], got[-300:]
    srv.req("POST", f"/v1/runs/{rid}/cancel", srv.owner)


def test_one_workspace_cannot_fill_the_queue_for_others(tmp_path):
    """With --concurrency 2 --queue 6, one workspace's 8 runs made every
    other workspace's POST /v1/runs fail with 503. Now each workspace has
    its own quota (a quarter of the queue by default), the 503 names whose
    limit it was, and workspaces take turns for the slots."""
    s = Server(tmp_path, extra=["--concurrency", "2", "--queue", "6", "--drain-timeout", "1"])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.other = s.cli("keys", "create", "eve", "--role", "owner", ws="other").stdout.strip().splitlines()[-1]
    for ws in (None, "other"):
        (tmp_path / (ws or "default")).mkdir()
        s.cli("agent", "register", str(agent(tmp_path / (ws or "default"), "sleeper",
                                             "sleep 30\n")), ws=ws)
    s.start()
    try:
        codes, msgs, ids = [], [], []
        for _ in range(8):
            st, j, _, _ = s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})
            codes.append(st)
            if st == 202:
                ids.append(j["id"])
            else:
                msgs.append(j["error"]["message"])
        # 2 run, 2 wait (6 / 4 rounded up), the rest are refused by name
        assert codes.count(202) == 4 and codes.count(503) == 4, codes
        assert all("workspace default has 2 runs waiting" in m for m in msgs), msgs
        st, j, _, _ = s.req("POST", "/v1/runs", s.other, body={"agent": "sleeper"})
        assert st == 202, j
        other_id = j["id"]
        # A slot frees: the other workspace's run goes before default's
        # second queued one (turns), though it came later.
        s.req("POST", f"/v1/runs/{ids[0]}/cancel", s.owner)
        s.wait_final(s.owner, ids[0], timeout=20)
        deadline = time.time() + 20
        while time.time() < deadline:
            st, o, _, _ = s.req("GET", f"/v1/runs/{other_id}", s.other)
            if o["status"] == "running":
                break
            time.sleep(0.1)
        assert o["status"] == "running", o
        st, q, _, _ = s.req("GET", f"/v1/runs/{ids[3]}", s.owner)
        assert q["status"] == "created", q
        assert s.health()["queued"] == 2
    finally:
        assert s.stop() == 0


def test_workspace_running_quota(tmp_path):
    s = Server(tmp_path, extra=["--concurrency", "3", "--workspace-concurrency", "1",
                                "--workspace-queue", "5"])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.cli("agent", "register", str(agent(tmp_path, "sleeper", "sleep 30\n")))
    s.start()
    try:
        ids = [s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})[1]["id"]
               for _ in range(3)]
        time.sleep(1.5)
        h = s.health()
        assert h["running"] == 1 and h["queued"] == 2, h
        for rid in ids:
            s.req("POST", f"/v1/runs/{rid}/cancel", s.owner)
    finally:
        assert s.stop() == 0


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_uploads_go_to_disk_and_are_bounded(tenants):
    """Three unfinished 30 MiB uploads added 94 MiB to the server's memory.
    Now an upload is spooled to a file under STATE/tmp, and at most 4 are
    in progress at once."""
    srv = tenants
    before = rss_kib(srv.proc.pid)
    conns = []
    try:
        for _ in range(4):
            c = socket.create_connection(("127.0.0.1", srv.port))
            c.sendall(f"POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.owner}\r\n"
                      f"Content-Type: application/gzip\r\nContent-Length: {31 << 20}\r\n\r\n".encode())
            c.sendall(b"\0" * (30 << 20))
            conns.append(c)
        time.sleep(1)
        grown = rss_kib(srv.proc.pid) - before
        assert grown < 20 * 1024, f"the server grew by {grown} KiB"
        assert srv.health()["connections"]["uploads"] == 4
        st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=b"x", headers=GZ)
        assert st == 503 and "4 bundle uploads are in progress" in j["error"]["message"], j
    finally:
        for c in conns:
            c.close()
    # the slots come back, and nothing is left in STATE/tmp
    assert wait_for(lambda: srv.health()["connections"]["uploads"] == 0)
    d = agent(srv.tmp, "after", "true\n")
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 201, j
    assert not [p for p in (srv.state / "tmp").iterdir() if p.name.startswith("upload.")]


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_x_forwarded_for_only_from_a_trusted_proxy(tmp_path):
    """Behind --trusted-proxy, the client is the proxy's X-Forwarded-For
    entry and its requests in progress are capped; everyone else's
    X-Forwarded-For is ignored, so a client cannot pose as another."""
    for trusted, want in (("127.0.0.1", 429), ("10.9.9.9", 200)):
        (tmp_path / trusted).mkdir()
        s = Server(tmp_path / trusted, extra=["--trusted-proxy", trusted, "--streams-per-key", "70"])
        s.owner = s.cli("init").stdout.strip().splitlines()[-1]
        s.cli("agent", "register", str(agent(tmp_path / trusted, "sleeper", "sleep 30\n")))
        s.start()
        held = []
        try:
            rid = s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})[1]["id"]

            def stream(xff):
                c = socket.create_connection(("127.0.0.1", s.port))
                c.sendall(f"GET /v1/runs/{rid}/events?follow=1 HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: Bearer {s.owner}\r\n"
                          f"X-Forwarded-For: 203.0.113.7, {xff}\r\n\r\n".encode())
                c.settimeout(10)
                head = c.recv(4096)
                held.append(c)
                return int(head.split(b" ", 2)[1])

            codes = [stream("10.0.0.1") for _ in range(64)]
            assert set(codes) == {200}
            assert stream("10.0.0.1") == want
            assert stream("10.0.0.2") == 200
            s.req("POST", f"/v1/runs/{rid}/cancel", s.owner)
        finally:
            for c in held:
                c.close()
            assert s.stop() == 0


# ------------------------------------------------ 5. the rest

def test_nul_in_the_url_is_refused(tenants):
    srv = tenants
    for path in ("/v1/whoami%00/../keys", "/v1/keys%00", "/v1/runs?agent=a%00b",
                 "/index.html%00.png"):
        st, j, _, _ = srv.req("GET", path, srv.member)
        assert st == 400 and "NUL" in j["error"]["message"], (path, st, j)


def test_unknown_methods_answer_405_with_allow(tenants):
    srv = tenants
    for method, path, allow in (("POST", "/v1/whoami", "GET"), ("PUT", "/v1/whoami", "GET"),
                                ("DELETE", "/v1/whoami", "GET"), ("DELETE", "/v1/runs", "GET, POST"),
                                ("PATCH", "/v1/policy", "GET, PUT"),
                                ("GET", "/v1/grants", "POST"), ("POST", "/", "GET, HEAD")):
        st, j, _, r = srv.req(method, path, srv.member)
        assert st == 405, (method, path, st, j)
        assert r.getheader("Allow") == allow, (method, path, r.getheader("Allow"))
        assert j["error"]["code"] == "method_not_allowed"


def test_bearer_scheme_is_case_insensitive(tenants):
    srv = tenants
    for scheme in ("bearer", "BEARER", "BeArEr"):
        st, j, _, _ = srv.req("GET", "/v1/whoami", headers={"Authorization": f"{scheme} {srv.member}"})
        assert st == 200, (scheme, j)
    st, _, _, _ = srv.req("GET", "/v1/whoami", headers={"Authorization": f"Basic {srv.member}"})
    assert st == 401


def test_a_cut_upload_is_never_registered(tenants, tmp_path):
    """A tar cut at an entry boundary registered as a part of the agent.
    Now the end-of-archive marker is required, and the CLI sends the tree's
    sha256, which the server compares before registering."""
    import gzip
    import io
    import tarfile
    srv = tenants
    d = agent(tmp_path, "whole", "true\n")
    (d / "big.txt").write_text("b" * 5000)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for p in sorted(d.iterdir()):
            t.add(p, arcname=p.name)
    tar = raw.getvalue()
    # cut right after the first entry (agent.json): a well-formed tar prefix
    first = tarfile.open(fileobj=io.BytesIO(tar)).getmembers()[0]
    cut = tar[:first.offset_data + ((first.size + 511) // 512) * 512]
    for body in (cut, gzip.compress(cut)):
        st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=body, headers=GZ)
        assert st == 400 and "end-of-archive marker" in j["error"]["message"], j
    st, j, _, _ = srv.req("GET", "/v1/agents", srv.owner)
    assert "whole" not in {a["name"] for a in j["items"]}
    # The tree's hash, when sent, must be the unpacked tree's.
    hdr = dict(GZ)
    hdr["X-Cordon-Tree-Sha256"] = "0" * 64
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=gzip.compress(tar), headers=hdr)
    assert st == 400 and "not the " + "0" * 64 in j["error"]["message"], j
    hdr["X-Cordon-Tree-Sha256"] = "nothex"
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=gzip.compress(tar), headers=hdr)
    assert st == 400
    # The CLI sends the right one: its registration goes through, with it.
    env = dict(srv.env, CORDON_URL=f"http://127.0.0.1:{srv.port}", CORDON_API_KEY=srv.owner)
    r = run([CORDON, "agent", "register", "--json", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    local = tmp_path / "local"
    local.mkdir(mode=0o700)
    r2 = run([CORDON, "agent", "register", "--json", "--state", str(local), str(d)])
    assert json.loads(r.stdout)["sha256"] == json.loads(r2.stdout)["sha256"]


def test_upload_errors_name_no_server_path(tenants, tmp_path):
    srv = tenants
    d = tmp_path / "noagent"
    d.mkdir()
    (d / "x").write_text("hi")
    st, j, raw, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 404 and "upload/agent.json" in j["error"]["message"], j
    assert str(srv.state).encode() not in raw


def test_route_table_matches_the_openapi_file(tenants):
    """The table serve authorizes by is the documented one: every
    documented route exists with its documented role, and nothing else."""
    import yaml
    from conftest import ROOT
    doc = yaml.safe_load((ROOT / "docs" / "api" / "openapi.yaml").read_text())
    documented = {}
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                documented[(method.upper(), path)] = op["x-cordon-role"]
    r = run([CORDON, "serve", "--routes", "--json"])
    assert r.returncode == 0, r.stderr
    table = {(x["method"], x["path"]): x["role"] for x in json.loads(r.stdout)}
    assert table == documented
    # and the running server follows it: members get 403 on owner routes
    for (method, path), role in table.items():
        url = path.replace("{id}", "x_1").replace("{name}", "N_1")
        st, j, _, _ = tenants.req(method, url, tenants.member,
                                  raw=b"{}", headers={"Content-Type": "application/json"})
        if role == "owner":
            assert st == 403, (method, path, st)
        elif path != "/v1/secrets/{name}":  # refused to every role, by design
            assert st not in (403, 405), (method, path, st)
