# SPDX-License-Identifier: Apache-2.0
"""The client SDKs (sdk/typescript, sdk/python; docs/sdk.md): each installed
from the artifact its ecosystem ships (the tarball of `npm pack`, a wheel of
`python3 -m build`), then driven against a real `cordon serve`: register an
agent, dispatch a run and follow its events, read its output, artifact and
evidence (verified with `cordon evidence verify`), secrets, approvals, usage,
keys, schedules and typed errors. Also: every operation of openapi.yaml has
a method in both, both carry cordon's version, and the committed reference
docs are what the generators give."""
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CORDON, run
from test_serve import Server, agent, free_port

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "sdk" / "typescript"
PY = ROOT / "sdk" / "python"
NODE = shutil.which("node")
NPM = shutil.which("npm")
METHODS = ("get", "put", "post", "delete", "patch")
METRICS_TOKEN = "sdk-metrics-token-0123456789"


def openapi_operations():
    doc = yaml.safe_load((ROOT / "docs" / "api" / "openapi.yaml").read_text())
    ops = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                ops[op["operationId"]] = (method.upper(), path)
    return ops


def cordon_version():
    return re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text()).group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdk")
    token = tmp / "metrics.token"
    token.write_text(METRICS_TOKEN + "\n")
    token.chmod(0o600)
    metrics_port = free_port()
    s = Server(tmp, extra=["--metrics-listen", f"127.0.0.1:{metrics_port}",
                           "--metrics-token-file", str(token)])
    s.metrics_url = f"http://127.0.0.1:{metrics_port}"
    r = s.cli("init")
    assert r.returncode == 0, r.stderr
    s.owner = r.stdout.strip().splitlines()[-1]
    r = s.cli("keys", "create", "sdk-member", "--role", "member")
    assert r.returncode == 0, r.stderr
    s.member = r.stdout.strip().splitlines()[-1]
    s.agent_dir = agent(tmp, "sdk-hello",
                        "echo 'hello from the agent'\n"
                        "echo '{\"ok\": true}' > /workspace/output.json\n"
                        "echo report > /workspace/out/report.txt\nsleep 1\n")
    # A path too long for a tar header's name field (the TypeScript SDK's
    # tar writer gives it a pax header) and a symlink.
    deep = s.agent_dir / "data" / ("d" * 70)
    deep.mkdir(parents=True)
    (deep / ("f" * 90 + ".txt")).write_text("deep\n")
    (s.agent_dir / "run-link.sh").symlink_to("run.sh")
    # The hash `cordon agent register DIR` gives the tree locally: an upload
    # of it must be registered with the same.
    local = dict(s.env, CORDON_STATE=str(tmp / "local-state"))
    r = run([CORDON, "agent", "register", str(s.agent_dir)], env=local)
    assert r.returncode == 0, r.stderr
    s.tree_sha256 = re.search(r"sha256:([0-9a-f]{64})", r.stdout).group(1)
    s.start()
    yield s
    s.stop(signal.SIGKILL)


def sdk_env(server, out):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    env.update(CORDON_URL=f"http://127.0.0.1:{server.port}", CORDON_API_KEY=server.owner,
               CORDON_STATE=str(server.state), SDK_AGENT_DIR=str(server.agent_dir),
               SDK_MEMBER_KEY=server.member, SDK_OUT=str(out),
               SDK_METRICS_URL=server.metrics_url, SDK_METRICS_TOKEN=METRICS_TOKEN)
    return env


def check_run(server, result, pack):
    """What both drivers report: the run, its events and its evidence."""
    assert result["version"] == cordon_version()
    assert result["agent_sha256"].removeprefix("sha256:") == server.tree_sha256
    assert result["event_types"][0] == "run.created"
    assert "sandbox.ready" in result["event_types"]
    v = server.cli("evidence", "verify", "--json", str(pack))
    assert v.returncode == 0, v.stdout + v.stderr
    assert json.loads(v.stdout)["run_id"] == result["run_id"], v.stdout


def check_example(r):
    """The example dispatched a run and printed its events as they came."""
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split("\t")[:2] == ["1", "run.created"], r.stdout
    assert "\trun.finished\t" in r.stdout
    m = re.fullmatch(r"run_\S+: succeeded (.*)", lines[-1])
    assert m and json.loads(m.group(1)) == {"ok": True}, lines[-1]


def test_typescript_sdk_from_its_tarball(server, tmp_path):
    if not NODE or not NPM:
        pytest.skip("no node or npm (Node 20 or newer runs the TypeScript SDK)")
    # npm pack from a copy, so that nothing is written into the source tree
    src = tmp_path / "src"
    shutil.copytree(TS, src, ignore=shutil.ignore_patterns("node_modules", "test", "*.tgz"))
    r = run([NPM, "pack", "--silent", "--pack-destination", str(tmp_path)], cwd=src, timeout=60)
    assert r.returncode == 0, r.stderr
    tgz = tmp_path / r.stdout.strip().splitlines()[-1]
    assert tgz.name == f"cordon-sdk-{cordon_version()}.tgz", tgz
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"private": true, "type": "module"}\n')
    r = run([NPM, "install", "--offline", "--no-audit", "--no-fund", "--silent", str(tgz)],
            cwd=app, timeout=60)
    assert r.returncode == 0, r.stderr
    installed = app / "node_modules" / "@cordon" / "sdk"
    assert (installed / "index.d.ts").is_file() and (installed / "REFERENCE.md").is_file()
    assert not (installed / "test").exists()
    shutil.copy(TS / "test" / "e2e.mjs", app)
    pack = tmp_path / "evidence.tar.gz"
    r = run([NODE, "e2e.mjs"], cwd=app, env=sdk_env(server, pack), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["resolved"] == str(installed / "index.js")
    check_run(server, result, pack)
    # the example, as shipped in the package
    r = run([NODE, installed / "examples" / "follow-run.mjs", "sdk-hello", '{"from": "example"}'],
            cwd=app, env=sdk_env(server, pack), timeout=60)
    check_example(r)


def test_python_sdk_from_its_wheel(server, tmp_path):
    if importlib.util.find_spec("build") is None:
        pytest.skip("no python3-build (scripts/bootstrap installs it)")
    src = tmp_path / "src"
    shutil.copytree(PY, src, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info",
                                                            "__pycache__"))
    dist = tmp_path / "dist"
    r = run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
             str(src)], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    wheel, = dist.glob("*.whl")
    assert wheel.name == f"cordon_sdk-{cordon_version()}-py3-none-any.whl"
    # A venv of its own (the system's packages visible for pip alone), the
    # wheel installed into it, offline.
    venv = tmp_path / "venv"
    r = run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    r = run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--disable-pip-version-check", str(wheel)], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    site, = venv.glob("lib/python3*/site-packages")
    assert (site / "cordon" / "py.typed").is_file()
    pack = tmp_path / "evidence.tar.gz"
    env = sdk_env(server, pack)
    env.pop("PYTHONPATH", None)
    r = run([str(py), "-P", str(PY / "test" / "e2e.py")], cwd=tmp_path, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["resolved"] == str(site / "cordon" / "__init__.py")
    check_run(server, result, pack)
    r = run([py, "-P", PY / "examples" / "follow_run.py", "sdk-hello", '{"from": "example"}'],
            cwd=tmp_path, env=env, timeout=60)
    check_example(r)


def sdk_tables():
    """Each SDK's operation table from its source, with, for each row,
    whether the method it names exists and calls that operation."""
    tables = {}
    if NODE:
        script = """
const m = await import(process.argv[1]);
const c = new m.Cordon({ apiKey: "x" });
const rows = {};
for (const [op, [method, path, name]] of Object.entries(m.OPERATIONS)) {
  const fn = name.split(".").reduce((o, k) => o?.[k], c);
  rows[op] = [method, path, name, typeof fn === "function" && fn.toString().includes(JSON.stringify(op))];
}
console.log(JSON.stringify(rows));
"""
        r = run([NODE, "--input-type=module", "-e", script, "--", (TS / "index.js").as_uri()])
        assert r.returncode == 0, r.stderr
        tables["typescript"] = json.loads(r.stdout)
    script = """
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
import cordon
c = cordon.Client(api_key="x")
rows = {}
for op, (method, path, name) in cordon.OPERATIONS.items():
    fn = c
    for part in name.split("."):
        fn = getattr(fn, part, None)
    rows[op] = [method, path, name, callable(fn) and f'"{op}"' in inspect.getsource(fn)]
print(json.dumps(rows))
"""
    r = run([sys.executable, "-B", "-c", script, str(PY / "src")])
    assert r.returncode == 0, r.stderr
    tables["python"] = json.loads(r.stdout)
    return tables


def test_every_operation_is_reachable_from_both_sdks():
    want = openapi_operations()
    assert len(want) > 40
    tables = sdk_tables()
    if not NODE:
        pytest.skip("no node: only the Python SDK's table was checked")
    for lang, rows in tables.items():
        missing = sorted(set(want) - set(rows))
        assert not missing, f"{lang} SDK: no method for {missing} (docs/sdk.md, 'The contract')"
        stale = sorted(set(rows) - set(want))
        assert not stale, f"{lang} SDK: operations not in openapi.yaml: {stale}"
        for op, (method, path, name, calls) in rows.items():
            assert (method, path) == want[op], f"{lang} {op}: {method} {path}, openapi: {want[op]}"
            assert calls, f"{lang} {op}: {name} is not a method that calls {op}"
    # the TypeScript typings declare each of them
    dts = (TS / "index.d.ts").read_text()
    bodies = dict(re.findall(r"^export (?:class|interface) (\w+)[^{]*\{\n(.*?)^\}", dts,
                             re.M | re.S))
    members = {name: set(re.findall(r"^  (\w+)\??[(:]", body, re.M))
               for name, body in bodies.items()}
    attrs = dict(re.findall(r"^  (\w+): (\w+);$", bodies["Cordon"], re.M))
    for op, row in tables["typescript"].items():
        *path, name = row[2].split(".")
        where = attrs[path[0]] if path else "Cordon"
        assert name in members.get(where, ()), f"index.d.ts: {where} has no {name} ({op})"
    # the two SDKs name the same methods (camelCase and snake_case)
    snake = {op: re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), row[2])
             for op, row in tables["typescript"].items()}
    assert snake == {op: row[2] for op, row in tables["python"].items()}


def test_the_typescript_typings_compile():
    """index.d.ts compiles (strict), and test/types.ts and the example, as
    written, type-check against it; test/types.ts also expects errors where
    a call is wrong (a positional key, an unknown group_by)."""
    tsc = TS / "node_modules" / "typescript" / "bin" / "tsc"
    if not NODE or not tsc.is_file():
        pytest.skip("no node or sdk/typescript/node_modules (scripts/bootstrap runs npm ci there)")
    r = run([NODE, str(tsc), "-p", str(TS / "tsconfig.json")], cwd=TS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_sdks_carry_cordons_version():
    v = cordon_version()
    assert json.loads((TS / "package.json").read_text())["version"] == v
    assert f'VERSION = "{v}"' in (TS / "lib" / "version.js").read_text()
    assert f'version = "{v}"' in (PY / "pyproject.toml").read_text()
    assert f'__version__ = "{v}"' in (PY / "src" / "cordon" / "_version.py").read_text()


def test_the_reference_docs_are_generated():
    r = run([sys.executable, "-B", str(PY / "scripts" / "reference.py")])
    assert r.returncode == 0, r.stderr
    assert r.stdout == (PY / "REFERENCE.md").read_text(), \
        "sdk/python/REFERENCE.md is stale: python3 sdk/python/scripts/reference.py > sdk/python/REFERENCE.md"
    if not NODE:
        pytest.skip("no node: sdk/typescript/REFERENCE.md not checked")
    r = run([NODE, str(TS / "scripts" / "reference.mjs")])
    assert r.returncode == 0, r.stderr
    assert r.stdout == (TS / "REFERENCE.md").read_text(), \
        "sdk/typescript/REFERENCE.md is stale: node sdk/typescript/scripts/reference.mjs > sdk/typescript/REFERENCE.md"
