# SPDX-License-Identifier: Apache-2.0
"""Declared dependencies (docs/deps.md, issue 14 section 4): an agent's
lockfile is installed once, in a build sandbox whose only network is the
`registries` egress category, into a read-only layer keyed by the
lockfile, the runtime and the platform; later runs get the layer with no
network and no install. The registries are local stand-ins
(tests/integration/registry.py): nothing leaves loopback."""
import fcntl
import io
import json
import os
import shutil
import subprocess
import tarfile
import time

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
        # Refused by cordon before npm runs: not the configured registry.
        assert "is not on the configured npm registry" in r.stderr, r.stderr
        assert elsewhere.log == [] and npm.log == [], (elsewhere.log, npm.log)
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


# An sdist whose in-tree build backend writes PWNED into the build's
# workspace (the review's repro, /work/review-cd/tmp/pd): pip runs it only
# when it builds from source.
EVIL_BACKEND = r"""
open("/workspace/PWNED", "w").write("build backend ran")
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("the backend ran")
"""


def publish_evil_sdist(root):
    d = root / "simple" / "evil"
    d.mkdir(parents=True, exist_ok=True)
    files = {"evil-1.0/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "bk"\n'
                                        'backend-path = ["."]\n[project]\nname = "evil"\n'
                                        'version = "1.0"\n',
             "evil-1.0/bk.py": EVIL_BACKEND,
             "evil-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"}
    with tarfile.open(d / "evil-1.0.tar.gz", "w:gz") as t:
        for p, data in files.items():
            ti = tarfile.TarInfo(p)
            ti.size = len(data.encode())
            t.addfile(ti, io.BytesIO(data.encode()))


@needs_pip
def test_requirements_options_cannot_turn_source_builds_on(tmp_path):
    """A "--no-binary evil" line in requirements.txt once overrode pip's
    --only-binary=:all: and ran the sdist's backend in the build. cordon
    now refuses every option line before pip runs: pip never asks the
    index, no layer, no scratch."""
    ix = PyIndex(tmp_path / "index")
    try:
        publish_evil_sdist(tmp_path / "index")
        ix.publish("greetpy", "1.0", {"greetpy/__init__.py": "def hi(n):\n    return n\n"})
        st = State(tmp_path, CORDON_PYTHON_INDEX=ix.url)
        d = tmp_path / "evilagent"
        d.mkdir()
        (d / "agent.json").write_text(json.dumps({
            "name": "evil", "version": "1", "entrypoint": ["true"],
            "dependencies": {"python": "requirements.txt"}}))
        private = ("--allow-private", f"127.0.0.1:{ix.port}")
        for req, why in [("--no-binary evil\nevil==1.0\n", "line 1: \"--no-binary\""),
                         ("evil==1.0 \\\n  --no-binary=:all:\n", "only --hash=sha256"),
                         ("-r other.txt\n", "an option line"),
                         ("evil @ http://127.0.0.1/evil-1.0.tar.gz\n", "NAME==VERSION")]:
            (d / "requirements.txt").write_text(req)
            r = st.cordon("deps", "build", "--quiet", *private, str(d))
            assert r.returncode != 0 and why in r.stderr, (req, r.stderr)
        assert ix.log == [], ix.log
        assert layers(st) == []
        assert not [p for p in (st.state / "tmp").iterdir() if p.name.startswith("u.")]
        # The sdist alone is no wheel: pip, given only the pin, refuses it.
        (d / "requirements.txt").write_text("evil==1.0\n")
        r = st.cordon("deps", "build", "--quiet", *private, str(d))
        assert r.returncode != 0 and "pip install failed" in r.stderr, r.stderr
        assert layers(st) == []
    finally:
        ix.close()


@needs_npm
def test_lockfile_without_integrity_is_refused(tmp_path, npm):
    st = State(tmp_path, CORDON_NPM_REGISTRY=npm.url)
    ag = node_agent(tmp_path, npm)
    lock = json.loads((ag / "package-lock.json").read_text())
    del lock["packages"]["node_modules/greet-x"]["integrity"]
    (ag / "package-lock.json").write_text(json.dumps(lock))
    r = st.cordon("deps", "build", "--quiet", "--allow-private", f"127.0.0.1:{npm.port}", str(ag))
    assert r.returncode != 0, r.stdout
    assert 'node_modules/greet-x": no sha512 "integrity"' in r.stderr, r.stderr
    assert npm.log == [] and layers(st) == []


@needs_npm
def test_package_json_is_in_the_key_and_not_in_the_layer(tmp_path, npm):
    """Two agents with one lockfile but different package.json files once
    shared a layer that held the first one's package.json at
    /deps/package.json."""
    st = State(tmp_path, CORDON_NPM_REGISTRY=npm.url)
    a = node_agent(tmp_path, npm, name="tenant-a")
    b = tmp_path / "tenant-b"
    shutil.copytree(a, b)
    pj = json.loads((a / "package.json").read_text())
    pj["description"] = "tenant A's private note"
    (a / "package.json").write_text(json.dumps(pj))
    keys = []
    for ag in (a, b):
        r = st.cordon("deps", "build", "--json", "--allow-private", f"127.0.0.1:{npm.port}",
                      str(ag))
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["built"] is True, got
        keys.append(got["sha256"])
    assert keys[0] != keys[1] and sorted(layers(st)) == sorted(keys)
    for k in keys:
        names = sorted(p.name for p in (st.state / "deps" / k).iterdir())
        assert names == ["layer.json", "node_modules"], names


@needs_npm
def test_gc_keeps_a_layer_a_running_run_holds(tmp_path, npm):
    """The review's repro (/work/review-cd/tmp/pn): gc during a run took
    /node_modules from under it. The run holds its layer's lock shared;
    gc skips what it cannot lock, and removes it once the run ended."""
    st = State(tmp_path, CORDON_NPM_REGISTRY=npm.url)
    ag = node_agent(tmp_path, npm)
    (ag / "main.js").write_text(
        "setTimeout(() => { const g = require('greet-x');"
        " require('fs').writeFileSync(process.env.CORDON_OUTPUT, JSON.stringify({msg: g('x')})); },"
        " 2500);\n")
    r = st.cordon("deps", "build", "--json", "--allow-private", f"127.0.0.1:{npm.port}", str(ag))
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)["sha256"]
    run_p = subprocess.Popen([CORDON, "run", "--json", str(ag)], env=st.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the run holds the layer (the lock cannot be taken).
        lock = st.state / "deps" / f"{key}.lock"
        deadline = time.time() + 30
        held = False
        while not held and time.time() < deadline and run_p.poll() is None:
            with open(lock, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                    time.sleep(0.05)
                except BlockingIOError:
                    held = True
        assert held, "the run never held its layer"
        r = st.cordon("deps", "gc", "--json")
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["removed"] == [] and got["in_use_by_runs"] == [key], got
        out, err = run_p.communicate(timeout=60)
    finally:
        if run_p.poll() is None:
            run_p.kill()
    assert run_p.returncode == 0, err
    ev = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert st.result(ev)["output"] == {"msg": "hello x"}
    r = st.cordon("deps", "gc", "--json")
    assert [m["sha256"] for m in json.loads(r.stdout)["removed"]] == [key], r.stdout
    assert layers(st) == []


def test_gc_refuses_when_a_registered_versions_inputs_are_unreadable(tmp_path):
    st = State(tmp_path)
    d = tmp_path / "broken"
    d.mkdir()
    # No package.json beside the lockfile: the key cannot be computed.
    (d / "package-lock.json").write_text("{}")
    (d / "agent.json").write_text(json.dumps({
        "name": "broken", "version": "1", "entrypoint": ["true"],
        "dependencies": {"node": "package-lock.json"}}))
    assert st.cordon("agent", "register", str(d)).returncode == 0
    (st.state / "deps").mkdir(exist_ok=True)
    orphan = st.state / "deps" / ("ab" * 32)
    orphan.mkdir()
    r = st.cordon("deps", "gc")
    assert r.returncode != 0 and "could not be read" in r.stderr, r.stderr
    assert orphan.is_dir()


def test_stale_scratch_of_any_depth_is_removed(tmp_path):
    """A failed build's scratch deeper than 256 levels once stayed for
    good; the next command that opens the state removes it."""
    st = State(tmp_path)
    assert st.cordon("deps", "list").returncode == 0
    dead = subprocess.Popen(["true"])
    dead.wait()
    top = st.state / "tmp" / f"u.{dead.pid}.deadbeef"
    fd = os.open(st.state / "tmp", os.O_RDONLY)
    os.mkdir(top.name, dir_fd=fd)
    cur = os.open(top.name, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    for i in range(600):
        os.mkdir("d", dir_fd=cur)
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=cur), "w") as f:
            f.write("x")
        nxt = os.open("d", os.O_RDONLY, dir_fd=cur)
        if i % 100 == 50:
            os.chmod(cur, 0o555)  # read-only, as a sealed layer's are
        os.close(cur)
        cur = nxt
    os.close(cur)
    r = st.cordon("deps", "gc")
    assert r.returncode == 0, r.stderr
    assert not top.exists()
