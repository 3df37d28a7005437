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
        # The file keeps run_dir for local readers; the API never shows it.
        raw = (srv.state / "runs" / rid / "events.ndjson").read_text()
        assert '"run_dir"' in raw


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
