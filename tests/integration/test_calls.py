# SPDX-License-Identifier: Apache-2.0
"""Agent-to-agent calls (docs/mcp.md, "Calling another agent"): call_agent
through the run's MCP endpoint, the callee a run of its own with its own
record, the caller's result and evidence listing it, and every limit:
undeclared, ungranted, a cycle, the depth, the budget, cancelling."""
import json
import os
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import CORDON, run, wait_until

# One script for every agent: it lists its tools, makes the calls its input
# asks for (each call's input may ask for calls of its own), and writes
# what it got back.
CLIENT = r'''
import json, os, sys, time, urllib.request
URL = os.environ["CORDON_MCP_URL"]

def post(body, session=None, token=None):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
         "MCP-Protocol-Version": "2025-06-18"}
    if token:
        h["Authorization"] = "Bearer " + token
    if session:
        h["Mcp-Session-Id"] = session
    req = urllib.request.Request(URL, data=json.dumps(body).encode(), headers=h, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        d = r.read().decode()
        if r.headers.get("Content-Type") == "text/event-stream":
            d = [l[6:] for l in d.splitlines() if l.startswith("data: ") and len(l) > 6][-1]
        return json.loads(d) if d else None, r.headers.get("Mcp-Session-Id")

inp = json.load(open("/workspace/input.json"))
res, sid = post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"}}},
                token=os.environ["CORDON_MCP_TOKEN"])
tools = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session=sid)[0]
if inp.get("pause"):
    time.sleep(inp["pause"])
out = {"me": os.environ.get("ME", "?"), "tools": sorted(t["name"] for t in tools["result"]["tools"]),
       "got": {k: v for k, v in inp.items() if k not in ("calls", "pause")}, "results": []}
for i, call in enumerate(inp.get("calls", [])):
    for k, var in call.pop("input_from_env", {}).items():
        call.setdefault("input", {})[k] = os.environ[var]
    r = post({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
              "params": {"name": "call_agent", "arguments": call}}, session=sid)[0]
    out["results"].append(r.get("result") or r)
if inp.get("sleep"):
    time.sleep(inp["sleep"])
json.dump(out, open("/workspace/output.json", "w"))
'''


def agent(root, name, calls=None, timeout=None, **extra):
    d = root / name
    d.mkdir()
    (d / "client.py").write_text(CLIENT)
    m = {"name": name, "version": "1", "entrypoint": ["env", "ME=" + name, "python3",
                                                       "/agent/client.py"]}
    if calls is not None:
        m["calls"] = calls
    if timeout:
        m["limits"] = {"timeout_seconds": timeout}
    m.update(extra)
    (d / "agent.json").write_text(json.dumps(m))
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """alpha may call beta and gamma@1 (granted both) and omega (declared,
    never granted); beta may call gamma and alpha (both granted: a cycle
    needs the grant to be refused for being a cycle); gamma calls nobody;
    sleeper calls nobody and sleeps when asked."""
    root = tmp_path_factory.mktemp("calls")
    state = root / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    agents = {
        "alpha": agent(root, "alpha", ["beta", "gamma@1", "omega", "sleeper", "needy"]),
        "beta": agent(root, "beta", ["gamma", "alpha"]),
        "gamma": agent(root, "gamma"),
        "omega": agent(root, "omega"),
        "sleeper": agent(root, "sleeper", timeout=60),
        "needy": agent(root, "needy", required_secrets=["NOT_SET_HERE"]),
        "keeper": agent(root, "keeper", ["gamma"], required_secrets=["KEEPER_TOKEN"]),
    }
    hashes = {}
    for name, d in agents.items():
        r = run([CORDON, "agent", "register", "--json", str(d)], env=env)
        assert r.returncode == 0, r.stderr
        hashes[name] = json.loads(r.stdout)["sha256"]
    for a, callee in [("alpha", "beta"), ("alpha", "gamma"), ("alpha", "sleeper"), ("alpha", "needy"),
                      ("beta", "gamma"), ("beta", "alpha"), ("keeper", "gamma")]:
        r = run([CORDON, "grant", a, "--call", callee], env=env)
        assert r.returncode == 0 and "granted a call of" in r.stdout, r.stderr
    r = run([CORDON, "secret", "set", "KEEPER_TOKEN"], input="kept-" + "s3cr3t" * 4, env=env)
    assert r.returncode == 0, r.stderr
    return {"env": env, "state": state, "hashes": hashes}


def run_agent(world, name, inp, *opts, timeout=90):
    r = run([CORDON, "run", "--json", *opts, "-i", "-", name], input=json.dumps(inp),
            env=world["env"], timeout=timeout)
    events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert events and events[-1]["type"] == "run.finished", r.stdout + r.stderr
    res = json.loads((Path(events[-1]["run_dir"]) / "result.json").read_text())
    return r, events, res


def record(world, run_id):
    r = run([CORDON, "runs", "show", "--json", run_id], env=world["env"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_chain_of_depth_two_with_its_evidence(world, tmp_path):
    inp = {"q": 1, "calls": [{"agent": "beta", "input": {
        "q": 2, "calls": [{"agent": "gamma", "input": {"q": 3}}]}}]}
    r, events, res = run_agent(world, "alpha", inp)
    assert r.returncode == 0, r.stderr
    out = res["output"]
    assert "call_agent" in out["tools"]
    top = out["results"][0]
    assert top["isError"] is False, top
    beta = top["structuredContent"]
    assert beta["agent"] == "beta" and beta["status"] == "succeeded" and beta["version"] == 1
    assert beta["output"]["got"] == {"q": 2} and beta["output"]["me"] == "beta"
    gamma = beta["output"]["results"][0]["structuredContent"]
    assert gamma["output"] == {"me": "gamma", "got": {"q": 3}, "results": [],
                               "tools": ["get_input", "log", "report_step",
                                         "request_approval", "save_artifact"]}
    # The parent's result lists its child, by hash; the child's record
    # names its caller and lists its own child.
    assert [c["run_id"] for c in res["children"]] == [beta["run_id"]]
    child = res["children"][0]
    assert child["agent"] == "beta" and child["sha256"] == world["hashes"]["beta"]
    assert child["status"] == "succeeded" and child["resolved"]["agent"]["sha256"] == \
        world["hashes"]["beta"]
    b = record(world, beta["run_id"])
    assert b["caller"] == "run:" + res["run_id"] and b["parent"] == res["run_id"]
    bres = b["result"]
    assert [c["run_id"] for c in bres["children"]] == [gamma["run_id"]]
    assert bres["children"][0]["sha256"] == world["hashes"]["gamma"]
    g = record(world, gamma["run_id"])
    assert g["caller"] == "run:" + beta["run_id"] and "children" not in g["result"]
    started = [e for e in events if e["type"] == "call.started"]
    assert started and started[0]["run_id"] == beta["run_id"] and started[0]["depth"] == 1
    # The evidence pack signs the result, children and all, and verifies.
    pack = tmp_path / "alpha.pack"
    e = run([CORDON, "evidence", "export", res["run_id"], "-o", str(pack)], env=world["env"])
    assert e.returncode == 0, e.stderr
    v = run([CORDON, "evidence", "verify", str(pack)], env=world["env"])
    assert v.returncode == 0, v.stdout + v.stderr
    with tarfile.open(pack) as t:
        stmt = json.load(t.extractfile("statement.json"))
        packed = json.load(t.extractfile("result.json"))
    pred = stmt["predicate"]
    assert pred["children"] == [{"run_id": beta["run_id"], "status": "succeeded", "agent": {
        "name": "beta", "version": 1, "sha256": world["hashes"]["beta"]}}]
    assert packed["children"] == res["children"]


def test_refusals_cycle_undeclared_ungranted(world):
    inp = {"calls": [
        {"agent": "beta", "input": {"calls": [{"agent": "alpha", "input": {}}]}},
        {"agent": "delta"},
        {"agent": "omega"},
        {"agent": "gamma@2"},
        {"agent": "needy"},
    ]}
    r, events, res = run_agent(world, "alpha", inp)
    assert r.returncode == 0, r.stderr
    results = res["output"]["results"]
    # A cycle: alpha -> beta -> alpha, refused in beta's run.
    beta = results[0]["structuredContent"]
    cyc = beta["output"]["results"][0]
    assert cyc["isError"] is True and "a cycle: alpha -> beta -> alpha" in \
        cyc["content"][0]["text"], cyc
    undeclared, ungranted, other_version = results[1], results[2], results[3]
    assert undeclared["isError"] and "alpha does not declare a call of delta" in \
        undeclared["content"][0]["text"]
    assert ungranted["isError"] and "has not granted alpha a call of omega" in \
        ungranted["content"][0]["text"]
    assert other_version["isError"] and "does not declare a call of gamma@2" in \
        other_version["content"][0]["text"]
    # A child that fails: the agent gets its status and why.
    failed = results[4]
    assert failed["isError"] and failed["structuredContent"]["status"] == "error", failed
    assert "NOT_SET_HERE" in failed["structuredContent"]["error"]
    assert " ended error: " in failed["content"][0]["text"]
    refused = [e for e in events if e["type"] == "call.refused"]
    assert [e["agent"] for e in refused] == ["delta", "omega", "gamma@2"]
    assert [(c["agent"], c["status"]) for c in res["children"]] == [
        ("beta", "succeeded"), ("needy", "error")]
    b = record(world, beta["run_id"])
    assert "children" not in b["result"]


def test_a_callers_secret_stays_with_it(world):
    inp = {"calls": [{"agent": "gamma", "input_from_env": {"token": "KEEPER_TOKEN"}},
                     {"agent": "gamma", "input": {"fine": 1}}]}
    r, events, res = run_agent(world, "keeper", inp)
    leak, fine = res["output"]["results"]
    assert leak["isError"] and "holds a secret of this run ([REDACTED:KEEPER_TOKEN])" in \
        leak["content"][0]["text"], leak
    assert fine["isError"] is False
    assert [c["agent"] for c in res["children"]] == ["gamma"]
    g = record(world, res["children"][0]["run_id"])
    assert "s3cr3t" not in json.dumps(g)


def test_budget_and_depth(world):
    inp = {"calls": [{"agent": "gamma"}, {"agent": "beta", "input": {
        "calls": [{"agent": "gamma"}]}}]}
    r, events, res = run_agent(world, "alpha", inp, "--max-calls", "1")
    results = res["output"]["results"]
    assert results[0]["isError"] is False
    assert results[1]["isError"] and "budget of 1 calls for this whole tree of calls is spent" \
        in results[1]["content"][0]["text"]
    r, events, res = run_agent(world, "alpha", inp, "--max-call-depth", "1")
    results = res["output"]["results"]
    assert results[0]["isError"] is False and results[1]["isError"] is False
    deep = results[1]["structuredContent"]["output"]["results"][0]
    assert deep["isError"] and "the call depth limit is 1 (alpha -> beta -> gamma would be 2 deep)" \
        in deep["content"][0]["text"], deep


def tree_of(world, root):
    """The run ids below root, from the records' caller links."""
    r = run([CORDON, "runs", "list", "--json", "--limit", "1000"], env=world["env"])
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)
    runs = runs["runs"] if isinstance(runs, dict) else runs
    below, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [x["id"] for x in runs if x.get("parent") == p]
        below += kids
        todo += kids
    return below


def test_one_budget_for_the_whole_tree(world):
    """--max-calls counts the calls of the whole tree, not of each run: a
    chain alpha -> beta -> gamma where each run asks for three calls starts
    three runs in all, not 3 + 9 (and, with the defaults, not 16 + 256 +
    4096 + 65536)."""
    beta_in = {"calls": [{"agent": "gamma", "input": {"n": i}} for i in range(3)]}
    inp = {"calls": [{"agent": "beta", "input": beta_in}] * 3}
    r, events, res = run_agent(world, "alpha", inp, "--max-calls", "3")
    assert r.returncode == 0, r.stderr
    assert len(tree_of(world, res["run_id"])) == 3
    spent = "call_agent: refused: the budget of 3 calls for this whole tree of calls is spent"
    first, second, third = res["output"]["results"]
    assert first["isError"] is False, first
    g = first["structuredContent"]["output"]["results"]
    assert [x["isError"] for x in g] == [False, False, True], g
    assert g[2]["content"][0]["text"] == spent
    for refused in (second, third):
        assert refused["isError"] and refused["content"][0]["text"] == spent, refused
    started = [e for e in events if e["type"] == "call.started"]
    assert [e["tree_calls"] for e in started] == [1]
    # The count goes with its tree.
    assert not list((world["state"] / "tmp").glob("calls.*"))


def claim_deadlines(state):
    """run id -> --deadline of the `cordon run --claim` processes of this
    state directory."""
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (p / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if "--claim" in argv and "--deadline" in argv and str(state) in argv:
            out[argv[argv.index("--claim") + 1]] = int(argv[argv.index("--deadline") + 1])
    return out


def test_a_called_run_never_ends_after_its_caller(world):
    """A called run's deadline is its caller's at the latest: its own start
    plus its timeout would add its setup time past the caller's deadline,
    at each level, and its own calls would get that later deadline."""
    inp = {"calls": [{"agent": "beta", "input": {
        "calls": [{"agent": "gamma", "input": {"sleep": 2}}]}}]}
    p = subprocess.Popen([CORDON, "run", "--json", "-i", "-", "alpha"], env=world["env"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        p.stdin.write(json.dumps(inp))
        p.stdin.close()
        beta = None
        for line in p.stdout:
            e = json.loads(line)
            if e["type"] == "call.started":
                beta = e["run_id"]
                break
        assert beta, p.stderr.read()
        seen = {}
        assert wait_until(lambda: len(seen.update(claim_deadlines(world["state"])) or seen) >= 2,
                          timeout=20), seen
        gamma, = set(seen) - {beta}
        assert seen[gamma] <= seen[beta], (seen[gamma] - seen[beta], seen)
        p.stdout.read()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_agent_gets_no_store_detail(world):
    """A refusal's reason for the agent is cordon's own words; what the
    store said is kept in the caller's record only."""
    inp = {"calls": [{"agent": "beta", "input": {"pause": 2, "calls": [{"agent": "gamma"}]}}]}
    p = subprocess.Popen([CORDON, "run", "--json", "-i", "-", "alpha"], env=world["env"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        p.stdin.write(json.dumps(inp))
        p.stdin.close()
        root = beta = None
        for line in p.stdout:
            e = json.loads(line)
            root = root or e["run_id"]
            if e["type"] == "call.started":
                beta = e["run_id"]
                break
        assert beta, p.stderr.read()
        # beta's chain of callers now leads to a record that is not there:
        # reading it fails, with the store's message.
        db = sqlite3.connect(world["state"] / "cordon.db", timeout=10)
        with db:
            db.execute("UPDATE runs SET caller = ? WHERE id = ?",
                       ("run:run_000000000000000000000000", root))
        db.close()
        out = p.stdout.read()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    fin = json.loads(out.splitlines()[-1])
    res = json.loads((Path(fin["run_dir"]) / "result.json").read_text())
    b = res["output"]["results"][0]["structuredContent"]
    refused = b["output"]["results"][0]
    assert refused["isError"] and refused["content"][0]["text"] == \
        "call_agent: refused: the chain of callers cannot be read", refused
    ev = [json.loads(l) for l in
          (world["state"] / "runs" / beta / "events.ndjson").read_text().splitlines()]
    why = [e for e in ev if e["type"] == "call.refused"]
    assert why and "run_000000000000000000000000" in why[0]["detail"], why


def has_test_faults():
    r = run([Path(CORDON).parent / "cordon-net", "--version"])
    return "(test faults)" in r.stdout


def test_no_call_starts_as_the_run_ends(world):
    """A network part (compromised; here the test build's fault switch) that
    sends a CALL after the supervisor asked it to stop: no child starts
    after its caller's calls were cancelled."""
    if not has_test_faults():
        pytest.skip("needs a build with -Dtest_faults=true (the sanitizer build of make test)")
    env = dict(world["env"], CORDON_TEST_NETPART_FAULT="call-on-stop:gamma")
    r = run([CORDON, "run", "--json", "-i", "-", "alpha"], input="{}", env=env, timeout=90)
    events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert r.returncode == 0 and events[-1]["type"] == "run.finished", r.stdout + r.stderr
    assert tree_of(world, events[-1]["run_id"]) == []
    assert not [e for e in events if e["type"] == "call.started"]


def test_cancelling_the_parent_cancels_the_child(world):
    p = subprocess.Popen([CORDON, "run", "--json", "-i", "-", "alpha"], env=world["env"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    p.stdin.write(json.dumps({"calls": [{"agent": "sleeper", "input": {"sleep": 50}}]}))
    p.stdin.close()
    parent = child = None
    for line in p.stdout:
        e = json.loads(line)
        parent = parent or e["run_id"]
        if e["type"] == "call.started":
            child = e["run_id"]
            break
    assert child, p.stderr.read()
    assert wait_until(lambda: record(world, child)["status"] == "running", timeout=20)
    c = run([CORDON, "runs", "cancel", parent], env=world["env"])
    assert c.returncode == 0, c.stderr
    rest = p.stdout.read()
    assert p.wait(timeout=30) != 0
    ch = record(world, child)
    assert ch["status"] == "cancelled", ch
    assert "run:" + parent in ch["error"]
    fin = json.loads(rest.splitlines()[-1])
    assert fin["type"] == "run.finished" and fin["status"] == "cancelled"
    res = record(world, parent)["result"]
    assert [(c["run_id"], c["status"]) for c in res["children"]] == [(child, "cancelled")]


def test_grant_needs_a_registered_callee(world):
    r = run([CORDON, "grant", "alpha", "--call", "nobody"], env=world["env"])
    assert r.returncode != 0 and "agent nobody is not registered" in r.stderr


def test_through_serve_under_its_roles(tmp_path):
    """cordon serve: owners grant calls (members may not), runs dispatched
    over the API call others, and the records link parent and children."""
    from test_serve import Server
    s = Server(tmp_path, extra=["--max-calls", "4"])
    r = s.cli("init")
    assert r.returncode == 0, r.stderr
    owner = r.stdout.strip().splitlines()[-1]
    member = s.cli("keys", "create", "bob", "--role", "member").stdout.strip().splitlines()[-1]
    for name, calls in [("alpha", ["beta"]), ("beta", ["gamma"]), ("gamma", None)]:
        assert s.cli("agent", "register", str(agent(tmp_path, name, calls))).returncode == 0
    s.start()
    try:
        grant = {"agent": "alpha", "call": "beta"}
        assert s.req("POST", "/v1/grants", member, grant)[0] == 403
        assert s.req("POST", "/v1/grants", owner, dict(grant, capability="x"))[0] == 400
        assert s.req("POST", "/v1/grants", owner, {"agent": "alpha", "call": "nobody"})[0] == 404
        st, j, _, _ = s.req("POST", "/v1/grants", owner, grant)
        assert st == 200 and j == {"agent": "alpha", "call": "beta", "granted": True}
        st, j, _, _ = s.req("POST", "/v1/grants", owner, {"agent": "beta", "call": "gamma"})
        assert st == 200
        inp = {"calls": [{"agent": "beta", "input": {"calls": [{"agent": "gamma"}]}}]}
        st, j, _, _ = s.req("POST", "/v1/runs", member, {"agent": "alpha", "input": inp})
        assert st == 202, j
        top = s.wait_final(member, j["id"])
        assert top["status"] == "succeeded", top
        st, top, _, _ = s.req("GET", f"/v1/runs/{j['id']}", member)
        assert "parent" not in top
        kids = top["result"]["children"]
        assert [k["agent"] for k in kids] == ["beta"] and kids[0]["status"] == "succeeded"
        st, beta, _, _ = s.req("GET", f"/v1/runs/{kids[0]['run_id']}", member)
        assert st == 200 and beta["parent"] == j["id"] and beta["caller"] == "run:" + j["id"]
        assert beta["result"]["children"][0]["agent"] == "gamma"
        st, lst, _, _ = s.req("GET", "/v1/runs?agent=gamma", member)
        assert [x["parent"] for x in lst["runs"]] == [beta["id"]]
    finally:
        s.stop()
