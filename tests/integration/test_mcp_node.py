# SPDX-License-Identifier: Apache-2.0
"""A Node agent written with the official MCP TypeScript SDK
(@modelcontextprotocol/sdk from npm; tests/mcp-node/agent.mjs says what it
does) against a run's MCP endpoint, in a real sandbox: connect, list the
tools, call each one, a second session refused, reconnect once, a waiting
call resumed after its connection dropped, and a wait past the SDK's
default 60 s request timeout kept alive by progress notifications, beside
the same call without them, which the SDK gives up on at 60 s and
withdraws. A thread here plays the human who decides.

The human must wait past 60 s, so this is the suite's one test of more
than a minute: marked slow (the sanitizer pass, -m "not slow", leaves it
to the normal pass), and every other check runs while it waits, so the
whole test takes about as long as the wait.

scripts/bootstrap installs the SDK (npm ci in tests/mcp-node); without it,
or without node, the test is skipped with the reason."""
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import CORDON, run

NODE_DIR = Path(__file__).resolve().parent.parent / "mcp-node"
SDK = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk"
SDK_TIMEOUT_S = 60  # the SDK's default request timeout, which agent.mjs keeps
LONG_WAIT_S = 65  # when the human decides the long waits: past it

# When the human decides each action, in seconds after it is listed; None:
# never (the agent withdraws it).
DECIDE_AFTER = {"quick check": 0, "resume after a drop": 2, "long wait": LONG_WAIT_S,
                "as json": LONG_WAIT_S, "keep-alives": LONG_WAIT_S, "no progress": None,
                "short timeout": None}


def agent_tree(dest):
    """The agent's directory: agent.mjs and only the files of node_modules
    it loads (list-modules.mjs), with the package.json files above them
    that Node reads to resolve them: a few hundred files, not the 3,700 of
    node_modules, and no symlinks (npm ci --no-bin-links)."""
    listing = dest.parent / "modules.txt"
    r = subprocess.run(["node", "--import", str(NODE_DIR / "list-modules.mjs"),
                        str(NODE_DIR / "agent.mjs"), "--imports-only"],
                       env=dict(os.environ, MODULE_LIST=str(listing)), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    root = NODE_DIR / "node_modules"
    files = set()
    for url in listing.read_text().split():
        f = Path(url.removeprefix("file://"))
        if root in f.parents:
            files.add(f)
            for d in f.parents:
                if d == root:
                    break
                if (d / "package.json").is_file():
                    files.add(d / "package.json")
    assert any(SDK in f.parents for f in files), "the SDK was not loaded"
    dest.mkdir()
    for f in files:
        to = dest / "node_modules" / f.relative_to(root)
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, to)
    shutil.copyfile(NODE_DIR / "agent.mjs", dest / "agent.mjs")
    (dest / "agent.json").write_text(json.dumps({
        "name": "mcp-node-agent", "version": "1",
        "entrypoint": ["node", "/agent/agent.mjs"],
        "limits": {"timeout_seconds": 150}}))
    return len(files)


def control_dir():
    """Where runs' control sockets are (src/run/control.c, dir_name)."""
    if os.geteuid() == 0:
        return Path("/run/cordon")
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    return Path(xdg) / "cordon" if xdg.startswith("/") else Path(f"/tmp/cordon-{os.geteuid()}")


def decide(run_id, approval_id):
    """Approves through this run's own control socket. `cordon approvals
    approve` asks every run of the machine in turn and stops at the first
    that says yes, and a run of another checkout, built before runs said no
    to ids they do not hold, would take this test's decision."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10)
        c.connect(str(control_dir() / f"{run_id}.sock"))
        c.sendall(json.dumps({"op": "decide", "id": approval_id, "approve": True,
                              "by": "human"}).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = c.recv(4096)
            if not chunk:
                break
            answer += chunk
    return 0 if json.loads(answer or b"{}").get("ok") is True else 1


def human(env, proc, box):
    """Decides each of this run's approvals when DECIDE_AFTER says."""
    runs = Path(env["CORDON_STATE"]) / "runs"
    seen, decided = {}, set()
    box["listed"] = {}
    try:
        while proc.poll() is None:
            r = run([CORDON, "approvals", "list", "--json"], env=env)
            items = json.loads(r.stdout or "[]") if r.returncode == 0 else []
            for a in items:
                if not (runs / a["run_id"]).is_dir() or a["id"] in decided:
                    continue
                seen.setdefault(a["id"], time.time())
                box["listed"][a["action"]] = a
                after = DECIDE_AFTER.get(a["action"])
                if after is not None and time.time() - seen[a["id"]] >= after:
                    box.setdefault("decisions", []).append((a["action"],
                                                            decide(a["run_id"], a["id"])))
                    decided.add(a["id"])
            time.sleep(0.2)
    except Exception as e:  # shown by the test's assertions, not lost in a thread
        box["error"] = repr(e)


@pytest.fixture(scope="module")
def node_agent(tmp_path_factory):
    if not shutil.which("node"):
        pytest.skip("no node (Node 20 or newer runs the SDK agent)")
    if not (SDK / "package.json").is_file():
        pytest.skip("no @modelcontextprotocol/sdk in tests/mcp-node (run scripts/bootstrap)")
    d = tmp_path_factory.mktemp("mcp-node") / "agent"
    n = agent_tree(d)
    return d, n


@pytest.mark.slow
def test_official_sdk_agent(node_agent, tmp_path):
    agent, n_files = node_agent
    assert n_files < 1000
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    box = {}
    t0 = time.time()
    p = subprocess.Popen([CORDON, "run", "--json", "-i", "-", str(agent)], env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = threading.Thread(target=human, args=(env, p, box))
    t.start()
    try:
        stdout, stderr = p.communicate('{"ticket": "OPS-7"}', timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        t.join()
    elapsed = time.time() - t0
    events = [json.loads(l) for l in stdout.splitlines()]
    run_dir = Path(events[-1]["run_dir"])
    res = json.loads((run_dir / "result.json").read_text())
    out = res.get("output") or {}
    what = json.dumps({"box": box, "out": out, "stderr": stderr[-2000:],
                       "agent_stderr": (run_dir / "stderr").read_text()[-2000:]})
    assert p.returncode == 0 and "failed" not in out, what
    assert "error" not in box, what

    # 1. connected, the five tools, each called
    assert out["connected"] == {"session": True, "protocol": "2025-11-25", "server": "cordon"}
    assert out["tools"] == ["report_step", "save_artifact", "request_approval", "get_input", "log"]
    assert out["report_step"] == "step recorded" and out["log"] == "logged"
    assert out["get_input"] == {"ticket": "OPS-7"}
    assert out["save_artifact"]["name"] == "from-node.txt" and out["save_artifact"]["size"] == 23
    assert out["quick"]["decision"] == "approved"
    assert out["bad_argument"]["isError"] is True
    # 2. a token opens one session
    assert out["second_session"]["code"] == 401, what
    # 3. the reconnected client goes on with the session
    assert out["reconnected"] == "step recorded"
    # 4. the dropped call, resumed from its Last-Event-ID, got its decision
    assert re.fullmatch(r"\d+-\d+", out["resumption_token"]), what
    assert out["resumed"]["decision"] == "approved", what
    # 5. a short timeout without progress passes, and the client withdraws the request
    assert out["short"]["code"] == -32001 and out["short"]["waited_ms"] < 4000, what
    # everything above ran while the long waits waited
    assert out["quick_done_ms"] < SDK_TIMEOUT_S * 1000, what

    long = out["long"]
    # the SDK's own default timeout was in force, and the decision came after it
    assert long["default_timeout_ms"] == SDK_TIMEOUT_S * 1000, what
    # L1: progress reset the timeout, the human's decision arrived
    l1 = long["with_progress"]
    assert l1["decision"] == "approved", what
    assert l1["waited_ms"] > (SDK_TIMEOUT_S + 2) * 1000, what
    assert l1["progress"] >= 25, what
    last = l1["last"]
    assert last["total"] == 120000 and SDK_TIMEOUT_S * 1000 < last["progress"] < last["total"]
    assert "waiting for a human" in last["message"]
    # L2: the same call without progress timed out at the SDK's 60 s (what
    # L1 would do without progress notifications)
    l2 = long["without_progress"]
    assert l2["code"] == -32001 and "timed out" in l2["message"].lower(), what
    assert SDK_TIMEOUT_S * 1000 <= l2["waited_ms"] < (SDK_TIMEOUT_S + 4) * 1000, what
    # L3: one JSON answer past the endpoint's 60 s idle timeout
    l3 = long["as_json"]
    assert l3["status"] == 200 and l3["type"] == "application/json", what
    assert json.loads(l3["body"])["result"]["structuredContent"]["decision"] == "approved"
    assert l3["waited_ms"] > SDK_TIMEOUT_S * 1000, what
    # L4: a stream without a progressToken: keep-alives every 15 s, then the answer
    l4 = long["keep_alives"]
    assert l4["status"] == 200 and l4["type"] == "text/event-stream", what
    assert l4["body"].count(": keep-alive\n\n") >= 4, what
    assert '"decision":"approved"' in l4["body"].rstrip().splitlines()[-1], what
    # the only errors the SDK reported: its own streams, aborted by close()
    assert all("AbortError" in e for e in out["errors"]), what
    assert sorted(box["decisions"]) == [
        ("as json", 0), ("keep-alives", 0), ("long wait", 0), ("quick check", 0),
        ("resume after a drop", 0)], what

    # The record: one session for the whole run, steps, log, artifact, and
    # the approvals as a human saw them.
    types = [e["type"] for e in events]
    assert types.count("mcp.session_opened") == 1
    refused = [e["detail"] for e in events if e["type"] == "mcp.token_refused"]
    assert any("already used" in d for d in refused), refused
    assert [e["step"]["name"] for e in events if e["type"] == "step"] == [
        "node agent connected", "after reconnecting"]
    assert any(e["type"] == "log" and e["message"] == "hello from the SDK" for e in events)
    assert [a["name"] for a in res["artifacts"]] == ["from-node.txt"]
    asked = {e["approval_id"]: e["action"] for e in events if e["type"] == "approval.requested"}
    outcome = {asked[e["approval_id"]]: e for e in events if e["type"] == "approval.decided"}
    assert {k: v["decision"] for k, v in outcome.items()} == {
        "quick check": "approved", "resume after a drop": "approved", "long wait": "approved",
        "as json": "approved", "keep-alives": "approved", "no progress": "abandoned",
        "short timeout": "abandoned"}, outcome
    # the drop did not abandon the call; the client's cancellation did
    assert outcome["short timeout"]["detail"] == "the client cancelled the call"
    assert outcome["no progress"]["detail"] == "the client cancelled the call"
    assert box["listed"]["long wait"]["reason"] == "a human takes longer than the client's timeout"
    # how long the SDK agent takes, for the suite's budget (about 70 s)
    print(f"node agent run: {elapsed:.1f} s, {n_files} files of node_modules")
