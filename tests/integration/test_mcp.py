# SPDX-License-Identifier: Apache-2.0
"""The run's MCP endpoint, from inside the sandbox: reachable only there,
one single-use token per phase, the five run-time tools, approvals decided
by a human through `cordon approvals`."""
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import CORDON, run

CLIENT = r'''
import json, os, sys, urllib.request, urllib.error
URL = os.environ["CORDON_MCP_URL"]
PHASE = sys.argv[1]
VERSION = os.environ.get("MCP_VERSION", "2025-06-18")

def post(body, session=None, token=None, version=VERSION):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if version:
        h["MCP-Protocol-Version"] = version
    if token:
        h["Authorization"] = "Bearer " + token
    if session:
        h["Mcp-Session-Id"] = session
    req = urllib.request.Request(URL, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            d = r.read()
            if r.headers.get("Content-Type") == "text/event-stream":
                # a call that waited: its answer is the stream's last message
                msgs = [json.loads(l[6:]) for l in d.decode().splitlines()
                        if l.startswith("data: ") and len(l) > 6]
                out.setdefault("streamed", []).append(body.get("params", {}).get("name"))
                return r.status, msgs[-1], r.headers.get("Mcp-Session-Id")
            return r.status, json.loads(d) if d else None, r.headers.get("Mcp-Session-Id")
    except urllib.error.HTTPError as e:
        d = e.read()
        return e.code, json.loads(d) if d else None, None

out = {}
tok = os.environ["CORDON_MCP_TOKEN"]
if PHASE == "setup":
    open("/workspace/setup-token", "w").write(tok)
init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": VERSION, "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}
out["no_token"] = post(init, version=None)[0]
st, res, sid = post(init, token=tok, version=None)
out["init"] = st
out["version"] = res["result"]["protocolVersion"]
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid)
out["reuse"] = post(init, token=tok, version=None)[0]
if PHASE == "run":
    out["setup_token"] = post(init, token=open("/workspace/setup-token").read(), version=None)[0]
st, tl, _ = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session=sid)
out["tools"] = sorted(t["name"] for t in tl["result"]["tools"])
def tool(i, name, args):
    return post({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                 "params": {"name": name, "arguments": args}}, session=sid)[1]["result"]
tool(3, "report_step", {"name": "step from " + PHASE, "detail": {"n": 1}})
if PHASE == "run":
    out["input"] = json.loads(tool(4, "get_input", {})["content"][0]["text"])
    out["artifact"] = tool(5, "save_artifact", {"name": "mcp-note.txt", "content": "over MCP\n"})["isError"]
    out["dup_artifact"] = tool(6, "save_artifact", {"name": "mcp-note.txt", "content": "x"})["isError"]
    out["bad_tool"] = post({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                            "params": {"name": "secret_get", "arguments": {}}}, session=sid)[1]
    tool(8, "log", {"level": "warning", "message": "careful"})
    out["approval"] = tool(9, "request_approval", {"action": "deploy v2 to staging",
                                                   "reason": "tests passed\non main"})["structuredContent"]["decision"]
    json.dump(out, open("/workspace/output.json", "w"))
'''


def make_agent(tmp_path):
    d = tmp_path / "mcp-agent"
    d.mkdir()
    (d / "client.py").write_text(CLIENT)
    (d / "agent.json").write_text(json.dumps({
        "name": "mcp-agent", "version": "1",
        "setup": ["python3", "/agent/client.py", "setup"],
        "entrypoint": ["python3", "/agent/client.py", "run"]}))
    return d


def table_entry(env, approval_id):
    """The entry of approval_id in `cordon approvals list`: its line and the
    indented ones below it (other runs on the machine list theirs too)."""
    lines = run([CORDON, "approvals", "list"], env=env).stdout.splitlines()
    at = next((i for i, l in enumerate(lines) if l.startswith(approval_id + " ")), None)
    if at is None:
        return None
    end = next((i for i in range(at + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[at:end])


def decide_when_asked(env, verb, box):
    try:
        decide_when_asked_now(env, verb, box)
    except Exception as e:  # shown by the test's assertion, not lost in a thread
        box["error"] = repr(e)


def decide_when_asked_now(env, verb, box):
    deadline = time.time() + 30
    box["lists"] = []
    while time.time() < deadline:
        t0 = time.time()
        r = run([CORDON, "approvals", "list", "--json"], env=env)
        box["lists"].append((round(time.time() - t0, 2), r.returncode, r.stderr[-300:]))
        items = json.loads(r.stdout or "[]") if r.returncode == 0 else []
        # This test's run only: other runs on the machine list theirs too.
        runs = Path(env["CORDON_STATE"]) / "runs"
        mine = [a for a in items if a["id"].startswith("apr_mcp_") and (runs / a["run_id"]).is_dir()]
        if mine:
            box["listed"] = mine[0]
            box["text"] = table_entry(env, mine[0]["id"])
            r = run([CORDON, "approvals", verb, mine[0]["id"], "--by", "tester"], env=env)
            box["rc"] = r.returncode
            return
        time.sleep(0.1)


@pytest.mark.parametrize("verb,want", [("approve", "approved"), ("reject", "denied")])
def test_mcp_endpoint_end_to_end(tmp_path, verb, want):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    box = {}
    t = threading.Thread(target=decide_when_asked, args=(env, verb, box))
    t.start()
    r = run([CORDON, "run", "--json", "-i", "-", make_agent(tmp_path)], input='{"q": 7}',
            env=env, timeout=90)
    t.join()
    assert r.returncode == 0, (box, r.stdout + r.stderr)
    events = [json.loads(l) for l in r.stdout.splitlines()]
    res = json.loads((Path(events[-1]["run_dir"]) / "result.json").read_text())
    out = res["output"]
    assert out["no_token"] == 401 and out["init"] == 200 and out["version"] == "2025-06-18"
    # Single use, and a phase's token dies with its phase.
    assert out["reuse"] == 401 and out["setup_token"] == 401
    assert out["tools"] == ["get_input", "log", "report_step", "request_approval",
                            "save_artifact"]
    assert out["input"] == {"q": 7}
    assert out["artifact"] is False and out["dup_artifact"] is True
    assert "error" in out["bad_tool"] or out["bad_tool"].get("result", {}).get("isError")
    assert out["approval"] == want
    # the call that waited for a human was answered as an SSE stream
    assert out["streamed"] == ["request_approval"]
    assert box["rc"] == 0 and box["listed"]["method"] == "MCP"
    # What a human decides on: the action and the agent's reason, not an
    # egress destination ("request_approval:0deploy v2 to staging").
    listed = box["listed"]
    assert listed["action"] == "deploy v2 to staging" and listed["reason"] == "tests passed\non main"
    assert listed["source"] == "mcp" and not {"host", "port", "path"} & set(listed)
    assert box["text"], "the approval is not in the table"
    assert "request_approval" not in box["text"] and ":0" not in box["text"]
    assert "deploy v2 to staging" in box["text"]
    assert "reason: tests passed\n" in box["text"] and box["text"].endswith(" on main")
    asked = [e for e in events if e["type"] == "approval.requested"]
    assert asked and asked[0]["action"] == "deploy v2 to staging"
    assert asked[0]["reason"] == "tests passed\non main"
    assert not {"hostname", "port", "path"} & set(asked[0])
    types = [e["type"] for e in events]
    assert types.count("mcp.token_refused") >= 3  # no token, reuse x2, the setup token
    assert [e["step"]["name"] for e in events if e["type"] == "step"] == [
        "step from setup", "step from run"]
    assert any(e["type"] == "log" and e["message"] == "careful" for e in events)
    decided = [e for e in events if e["type"] == "approval.decided"]
    assert decided and "tester" in decided[0]["by"]
    assert [a["name"] for a in res["artifacts"]] == ["mcp-note.txt"]
    assert (Path(events[-1]["run_dir"]) / "artifacts" / "mcp-note.txt").read_text() == "over MCP\n"
    # No token in the record.
    blob = (Path(events[-1]["run_dir"]) / "events.ndjson").read_text()
    assert "cdn_mcp_" not in blob


def test_mcp_endpoint_is_only_in_its_own_sandbox(tmp_path):
    """Another sandbox has its own loopback: nothing listens on 3129 there."""
    r = run([CORDON, "exec", "--", "python3", "-c",
             "import socket\ntry:\n socket.create_connection(('127.0.0.1', 3129), 2); print('open')\n"
             "except OSError as e: print('closed', e.errno)"])
    assert r.stdout.startswith("closed"), r.stdout + r.stderr


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_api_lists_the_action_and_reason(tmp_path):
    """GET /v1/approvals shows what the agent asks to do and why, as the CLI
    does, and an owner decides it through the API."""
    import http.client
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    r = run([CORDON, "init"], env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    srv = subprocess.Popen([CORDON, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stderr=log)

    def api(method, path):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request(method, path, headers={"Authorization": "Bearer " + key})
        res = c.getresponse()
        body = res.read()
        c.close()
        return res.status, json.loads(body or b"null")

    try:
        box = {}

        def decide():
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    st, j = api("GET", "/v1/approvals")
                except OSError:
                    time.sleep(0.1)
                    continue
                mine = [a for a in (j or {}).get("approvals", []) if a["id"].startswith("apr_mcp_")]
                if st == 200 and mine:
                    box["listed"] = mine[0]
                    box["decided"] = api("POST", f"/v1/approvals/{mine[0]['id']}/approve")
                    return
                time.sleep(0.1)

        t = threading.Thread(target=decide)
        t.start()
        r = run([CORDON, "run", "--json", make_agent(tmp_path)], env=env, timeout=90)
        t.join()
        assert r.returncode == 0, r.stdout + r.stderr
        a = box["listed"]
        assert a["method"] == "MCP" and a["source"] == "mcp"
        assert a["action"] == "deploy v2 to staging" and a["reason"] == "tests passed\non main"
        assert not {"host", "port", "path"} & set(a)
        assert box["decided"] == (200, {"id": a["id"], "decision": "approved"})
        out = json.loads((Path(json.loads(r.stdout.splitlines()[-1])["run_dir"]) /
                          "result.json").read_text())["output"]
        assert out["approval"] == "approved"
    finally:
        srv.kill()
        srv.wait()


OLDER_CLIENT = r'''
import json, os, urllib.request, urllib.error
URL = os.environ["CORDON_MCP_URL"]

def post(body, headers):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    h.update(headers)
    req = urllib.request.Request(URL, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            d = r.read()
            return r.status, json.loads(d) if d else None, r.headers.get("Mcp-Session-Id")
    except urllib.error.HTTPError as e:
        d = e.read()
        return e.code, json.loads(d) if d else None, None

out = {}
init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                   "clientInfo": {"name": "old", "version": "1"}}}
# A version we do not speak is still refused, before anything is spent.
out["refused"] = post(init, {"Authorization": "Bearer " + os.environ["CORDON_MCP_TOKEN"],
                             "MCP-Protocol-Version": "2024-11-05"})[:2]
st, res, sid = post(init, {"Authorization": "Bearer " + os.environ["CORDON_MCP_TOKEN"],
                           "MCP-Protocol-Version": "2025-03-26"})
out["init"] = [st, res["result"]["protocolVersion"], res["result"]["serverInfo"]]
V = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-03-26"}
out["initialized"] = post({"jsonrpc": "2.0", "method": "notifications/initialized"}, V)[0]
st, res, _ = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, V)
out["tools"] = [[t["name"], "title" in t, t.get("annotations", {}).get("title")] for t in res["result"]["tools"]]
# A batch, as 2025-03-26 has them.
st, res, _ = post([{"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "report_step", "arguments": {"name": "from a batch"}}},
                   {"jsonrpc": "2.0", "id": 4, "method": "ping"},
                   {"jsonrpc": "2.0", "method": "notifications/initialized"}], V)
out["batch"] = [st, [m["id"] for m in res]]
st, res, _ = post({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                   "params": {"name": "log", "arguments": {"level": "info", "message": "old client"}}},
                  {"Mcp-Session-Id": sid})
out["no_header"] = [st, res["result"]["isError"]]
json.dump(out, open("/workspace/output.json", "w"))
'''


def test_older_client_2025_03_26(tmp_path):
    """A client of protocol 2025-03-26 (the same Streamable HTTP) is served in
    that revision's shape; 2024-11-05 is still refused."""
    d = tmp_path / "old-agent"
    d.mkdir()
    (d / "client.py").write_text(OLDER_CLIENT)
    (d / "agent.json").write_text(json.dumps({
        "name": "old-agent", "version": "1", "entrypoint": ["python3", "/agent/client.py"]}))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    r = run([CORDON, "run", "--json", d], env=dict(os.environ, CORDON_STATE=str(state)), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    events = [json.loads(l) for l in r.stdout.splitlines()]
    out = json.loads((Path(events[-1]["run_dir"]) / "result.json").read_text())["output"]
    assert out["refused"][0] == 400 and out["refused"][1]["error"]["code"] == -32022
    assert "2025-03-26" in out["refused"][1]["error"]["data"]["supported"]
    assert out["init"][0] == 200 and out["init"][1] == "2025-03-26"
    assert "title" not in out["init"][2]
    assert out["initialized"] == 202
    assert [t[0] for t in out["tools"]] == ["report_step", "save_artifact", "request_approval",
                                           "get_input", "log"]
    assert all(not t[1] and t[2] for t in out["tools"])
    assert out["batch"] == [200, [3, 4]]
    assert out["no_header"] == [200, False]
    assert [e["step"]["name"] for e in events if e["type"] == "step"] == ["from a batch"]
    assert any(e["type"] == "log" and e["message"] == "old client" for e in events)
    opened = [e for e in events if e["type"] == "mcp.session_opened"]
    assert len(opened) == 1 and "protocol 2025-03-26" in opened[0]["detail"]


ASKER = r'''
import json, os, sys, urllib.request
URL = os.environ["CORDON_MCP_URL"]
def post(body, h):
    h = dict(h, **{"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(urllib.request.Request(URL, data=json.dumps(body).encode(),
                                                       headers=h), timeout=100) as r:
        return r.headers.get("Mcp-Session-Id"), json.loads(r.read() or b"null")
sid, _ = post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                          "clientInfo": {"name": "asker", "version": "1"}}},
              {"Authorization": "Bearer " + os.environ["CORDON_MCP_TOKEN"]})
_, res = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "request_approval",
                          "arguments": {"action": sys.argv[1],
                                        "reason": open("/agent/reason.txt").read()}}},
              {"Mcp-Session-Id": sid})
json.dump(res["result"], open("/workspace/output.json", "w"))
'''


def asker_agent(tmp_path, action, reason, name="asker"):
    d = tmp_path / name
    d.mkdir()
    (d / "ask.py").write_text(ASKER)
    (d / "reason.txt").write_text(reason)
    (d / "agent.json").write_text(json.dumps({
        "name": name, "version": "1", "entrypoint": ["python3", "/agent/ask.py", action]}))
    return d


def wait_listed(env, pred, timeout=30):
    runs = Path(env["CORDON_STATE"]) / "runs"
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = run([CORDON, "approvals", "list", "--json"], env=env)
        items = json.loads(r.stdout or "[]") if r.returncode == 0 else []
        mine = [a for a in items if (runs / a["run_id"]).is_dir() and pred(a)]
        if mine:
            return mine[0]
        time.sleep(0.1)
    raise AssertionError("not listed in time")


def test_a_decision_reaches_only_the_run_that_holds_it(tmp_path):
    """`cordon approvals approve ID` asks each run in turn: a run must say no
    to an id it does not hold (one that said yes to anything took other
    runs' decisions), and a long reason is listed cut at a character
    boundary."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    reason = "é" * 4000  # 8000 bytes: listed cut to 2048, whole in the event
    p = subprocess.Popen([CORDON, "run", "--json", asker_agent(tmp_path, "rotate keys", reason)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        a = wait_listed(env, lambda a: a.get("action") == "rotate keys")
        assert a["reason_truncated"] is True and a["reason"] == "é" * 1024
        r = run([CORDON, "approvals", "approve", "apr_mcp_0123456789abcdef", "--by", "t"], env=env)
        assert r.returncode == 1 and "no pending request" in r.stderr, r.stdout + r.stderr
        r = run([CORDON, "approvals", "reject", a["id"], "--by", "t"], env=env)
        assert r.returncode == 0, r.stderr
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, out + err
    events = [json.loads(l) for l in out.splitlines()]
    assert next(e for e in events if e["type"] == "approval.requested")["reason"] == reason
    res = json.loads((Path(events[-1]["run_dir"]) / "result.json").read_text())
    assert res["output"]["structuredContent"]["decision"] == "denied"

