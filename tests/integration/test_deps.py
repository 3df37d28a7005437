# SPDX-License-Identifier: Apache-2.0
"""Declared dependencies (docs/deps.md, issue 14 section 4): an agent's
lockfile is installed once, in a build sandbox whose only network is the
`registries` egress category, into a read-only layer keyed by the
lockfile, the runtime and the platform; later runs get the layer with no
network and no install. The registries are local stand-ins
(tests/integration/registry.py): nothing leaves loopback."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import CORDON, run
from registry import NpmRegistry, PyIndex
from test_serve import Server

NODE_MAIN = r"""
const fs = require('fs');
const http = require('http');
const greet = require('greet-x'), pad = require('leftpad-x');
const out = {msg: pad(greet('deps'), 12)};
try { fs.writeFileSync('/node_modules/planted.js', 'x'); out.write = 'written'; }
catch (e) { out.write = e.code; }
// The registry the layer came from: the run has no network to reach it.
const url = JSON.parse(fs.readFileSync(process.env.CORDON_INPUT)).registry || 'http://127.0.0.1:1/';
http.get(url, r => { out.net = 'reached ' + r.statusCode; done(); })
    .on('error', e => { out.net = e.code; done(); });
function done() { fs.writeFileSync(process.env.CORDON_OUTPUT, JSON.stringify(out)); }
"""

PY_MAIN = """
import json, os, greetpy
json.dump({"msg": greetpy.hi("deps"), "file": greetpy.__file__},
          open(os.environ["CORDON_OUTPUT"], "w"))
"""


# The sandbox's node and npm are the host's (/usr); the tests need them.
needs_npm = pytest.mark.skipif(not (shutil.which("node", path="/usr/local/bin:/usr/bin:/bin")
                                    and shutil.which("npm", path="/usr/local/bin:/usr/bin:/bin")),
                               reason="no node and npm where a sandbox finds them")
needs_pip = pytest.mark.skipif(
    subprocess.run(["/usr/bin/python3", "-m", "pip", "--version"], capture_output=True).returncode != 0,
    reason="no pip for /usr/bin/python3 (scripts/bootstrap installs python3-pip)")


@pytest.fixture
def npm():
    r = NpmRegistry()
    r.publish("greet-x", "2.1.0", {"index.js": "module.exports = n => 'hello ' + n;\n"})
    r.publish("leftpad-x", "1.0.0", {"index.js": "module.exports = (s, n) => s.padStart(n);\n"})
    yield r
    r.close()


def node_agent(tmp_path, reg, name="nodeagent", names=("greet-x", "leftpad-x")):
    d = tmp_path / name
    d.mkdir()
    reg.package_lock(d, list(names))
    (d / "main.js").write_text(NODE_MAIN)
    (d / "agent.json").write_text(json.dumps({
        "name": name, "version": "1", "entrypoint": ["node", "/agent/main.js"],
        "dependencies": {"node": "package-lock.json"}}))
    return d


class State:
    def __init__(self, tmp_path, **env):
        self.state = tmp_path / "state"
        self.env = dict(os.environ, CORDON_STATE=str(self.state), **env)

    def cordon(self, *args, timeout=120):
        return run([CORDON, *args], env=self.env, timeout=timeout)

    def run(self, agent, *extra):
        r = self.cordon("run", "--json", *extra, str(agent))
        events = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        return r, events

    def result(self, events):
        rid = events[0]["run_id"]
        return json.loads((self.state / "runs" / rid / "result.json").read_text())


def layers(st):
    d = st.state / "deps"
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.exists() else []


@needs_npm
def test_node_layer_built_once_then_reused_with_no_network(tmp_path, npm):
    st = State(tmp_path, CORDON_NPM_REGISTRY=npm.url)
    ag = node_agent(tmp_path, npm)
    private = ("--allow-private", f"127.0.0.1:{npm.port}")
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"registry": npm.url + "greet-x"}))
    r, ev = st.run(ag, *private, "-i", str(inp))
    assert r.returncode == 0, r.stderr
    built = [e for e in ev if e["type"] == "deps.built"]
    assert len(built) == 1 and built[0]["runtime"] == "node", ev
    # The build fetched both tarballs, with GET only.
    assert sorted(p for m, p in npm.log) == ["/greet-x/-/greet-x-2.1.0.tgz",
                                             "/leftpad-x/-/leftpad-x-1.0.0.tgz"], npm.log
    assert {m for m, p in npm.log} == {"GET"}
    res = st.result(ev)
    key = res["resolved"]["deps"]["sha256"]
    assert layers(st) == [key]
    assert res["output"]["msg"] == "  hello deps"
    # Read-only inside, and no network in the run to reach the registry.
    assert res["output"]["write"] in ("EROFS", "EACCES"), res["output"]
    assert not res["output"]["net"].startswith("reached"), res["output"]

    layer = st.state / "deps" / key
    mtime = layer.stat().st_mtime_ns
    meta = json.loads((layer / "layer.json").read_text())
    assert meta["sha256"] == key and meta["runtime"] == "node"
    # Sealed: ours and read-only on the host too.
    for p in [layer, layer / "node_modules", layer / "node_modules" / "greet-x" / "index.js"]:
        assert p.stat().st_mode & 0o222 == 0, p
    n_requests = len(npm.log)

    # The second run: the same layer, no build, nobody asked the registry,
    # even with the registry's address allowed to the run's proxy.
    r, ev = st.run(ag, *private, "-i", str(inp))
    assert r.returncode == 0, r.stderr
    assert [e["type"] for e in ev if e["type"].startswith("deps.")] == ["deps.cached"]
    res = st.result(ev)
    assert res["resolved"]["deps"]["sha256"] == key and res["resolved"]["deps"]["built"] is False
    assert res["output"]["msg"] == "  hello deps"
    assert not res["output"]["net"].startswith("reached"), res["output"]
    assert len(npm.log) == n_requests, npm.log
    assert layer.stat().st_mtime_ns == mtime

    # The signed evidence pack names the layer, and its verification checks it.
    pack = str(tmp_path / "run.evidence.tar.gz")
    r = st.cordon("evidence", "export", ev[0]["run_id"], "-o", pack)
    assert r.returncode == 0, r.stderr
    r = st.cordon("evidence", "verify", "--json", pack)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["deps"] == {"sha256": key}

    # Another agent with the same lockfile shares the layer.
    other = tmp_path / "other"
    other.mkdir()
    for f in ("package.json", "package-lock.json", "main.js"):
        (other / f).write_bytes((ag / f).read_bytes())
    (other / "agent.json").write_text(json.dumps({
        "name": "other", "version": "1", "entrypoint": ["node", "/agent/main.js"],
        "dependencies": {"node": "package-lock.json"}}))
    r, ev = st.run(other, *private)
    assert r.returncode == 0, r.stderr
    assert st.result(ev)["resolved"]["deps"]["sha256"] == key
    assert len(npm.log) == n_requests

    # gc keeps what a registered agent uses, removes the rest.
    assert st.cordon("agent", "register", str(ag)).returncode == 0
    r = st.cordon("deps", "gc", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["removed"] == []
    assert layers(st) == [key]


@needs_npm
def test_build_reaches_only_the_registries(tmp_path, npm):
    """A lockfile whose tarball is elsewhere (a second server, its address
    allowed to the proxy) fails to build: the build's egress is the
    registries category alone. The failed build leaves nothing."""
    st = State(tmp_path, CORDON_NPM_REGISTRY=npm.url)
    elsewhere = NpmRegistry()
    try:
        elsewhere.publish("sneaky-x", "1.0.0", {"index.js": "module.exports = 1;\n"})
        ag = node_agent(tmp_path, elsewhere, name="sneaky", names=("sneaky-x",))
        r, ev = st.run(ag, "--allow-private", f"127.0.0.1:{npm.port}",
                       "--allow-private", f"127.0.0.1:{elsewhere.port}")
        assert r.returncode != 0
        assert "dependencies: npm ci failed" in r.stderr, r.stderr
        assert elsewhere.log == [], elsewhere.log
        assert layers(st) == []
        assert not [p for p in (st.state / "tmp").iterdir() if p.name.startswith("u.")]
        # The run's record says why.
        rs = st.cordon("runs", "list", "--json")
        recs = json.loads(rs.stdout)
        recs = recs.get("runs", recs) if isinstance(recs, dict) else recs
        assert recs[0]["status"] == "error"
    finally:
        elsewhere.close()


@needs_npm
def test_concurrent_builds_of_one_key_build_once(tmp_path, npm):
    st = State(tmp_path, CORDON_NPM_REGISTRY=npm.url)
    ag = node_agent(tmp_path, npm)
    args = [CORDON, "deps", "build", "--json", "--allow-private", f"127.0.0.1:{npm.port}", str(ag)]
    procs = [subprocess.Popen(args, env=st.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    got = [json.loads(o) for o, _ in outs]
    assert len({g["sha256"] for g in got}) == 1
    # One built it; the others waited on its lock and found it.
    assert sorted(g["built"] for g in got) == [False, False, True], got
    assert len(npm.log) == 2, npm.log
    assert layers(st) == [got[0]["sha256"]]
    assert not [p for p in (st.state / "tmp").iterdir() if p.name.startswith("u.")]


@needs_pip
def test_python_layer_and_gc(tmp_path):
    ix = PyIndex(tmp_path / "index")
    try:
        ix.publish("greetpy", "1.0", {"greetpy/__init__.py":
                                      "def hi(n):\n    return 'hi ' + n\n"})
        st = State(tmp_path, CORDON_PYTHON_INDEX=ix.url)
        d = tmp_path / "pyagent"
        d.mkdir()
        (d / "requirements.txt").write_text("greetpy==1.0\n")
        (d / "main.py").write_text(PY_MAIN)
        (d / "agent.json").write_text(json.dumps({
            "name": "pyagent", "version": "1", "entrypoint": ["python3", "/agent/main.py"],
            "dependencies": {"python": "requirements.txt"}}))
        # Built ahead of time, then the run finds it.
        r = st.cordon("deps", "build", "--json", "--allow-private", f"127.0.0.1:{ix.port}",
                      str(d))
        assert r.returncode == 0, r.stderr
        b = json.loads(r.stdout)
        assert b["built"] is True and b["runtime"] == "python"
        n = len(ix.log)
        assert n >= 2
        r, ev = st.run(d)
        assert r.returncode == 0, r.stderr
        res = st.result(ev)
        assert res["output"] == {"msg": "hi deps", "file": "/deps/python/greetpy/__init__.py"}
        assert res["resolved"]["deps"]["sha256"] == b["sha256"]
        assert len(ix.log) == n
        r = st.cordon("deps", "build", str(d))
        assert r.returncode == 0 and "built already" in r.stdout, r.stdout
        # Not registered: gc removes it.
        r = st.cordon("deps", "list", "--json")
        assert [x["used"] for x in json.loads(r.stdout)["layers"]] == [False]
        r = st.cordon("deps", "gc")
        assert r.returncode == 0 and "removed " + b["sha256"] in r.stdout, r.stdout
        assert layers(st) == []
    finally:
        ix.close()


@needs_npm
def test_serve_builds_on_first_use(tmp_path, npm):
    s = Server(tmp_path, extra=["--allow-private", f"127.0.0.1:{npm.port}",
                                "--npm-registry", npm.url])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    member = s.cli("keys", "create", "bob", "--role", "member").stdout.strip().splitlines()[-1]
    other = s.cli("keys", "create", "eve", "--role", "owner", ws="other").stdout.strip().splitlines()[-1]
    ag = node_agent(tmp_path, npm)
    assert s.cli("agent", "register", str(ag)).returncode == 0
    s.start()
    try:
        # Declared, not built yet; another workspace sees none of it.
        st, j, _, _ = s.req("GET", "/v1/deps", member)
        assert st == 200, j
        assert [(a["agent"], a["built"], a["deps"]["runtime"]) for a in j["agents"]] == \
            [("nodeagent", False, "node")], j
        key = j["agents"][0]["deps"]["sha256"]
        st, j, _, _ = s.req("GET", "/v1/deps", other)
        assert st == 200 and j == {"agents": []}, j
        assert s.req("GET", "/v1/deps")[0] == 401
        keys = []
        for _ in range(2):
            st, j, _, _ = s.req("POST", "/v1/runs", member, body={"agent": "nodeagent"})
            assert st in (200, 201, 202), j
            rec = s.wait_final(member, j["id"] if "id" in j else j["run_id"])
            assert rec["status"] == "succeeded", rec
            deps = rec["result"]["resolved"]["deps"]
            keys.append((deps["sha256"], deps["built"]))
        assert keys[0][0] == keys[1][0] == key and [b for _, b in keys] == [True, False], keys
        assert len(npm.log) == 2
        st, j, _, _ = s.req("GET", "/v1/deps", s.owner)
        assert [(a["deps"]["sha256"], a["built"]) for a in j["agents"]] == [(key, True)], j
    finally:
        s.stop()
