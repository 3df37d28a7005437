# SPDX-License-Identifier: Apache-2.0
"""cordon run with the network: the agent's egress narrows the operator's
policy, a secret goes only where the manifest scopes it, every request is
in the run's audit log and its events, and the demo agent works end to end."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORDON, ROOT, run
from upstream import Upstream

SECRET = "sk-test-0123456789abcdefXYZ"


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


class Env:
    def __init__(self, tmp_path, upstream):
        self.tmp = tmp_path
        self.up = upstream
        self.state = tmp_path / "state"
        self.state.mkdir(mode=0o700)
        self.hosts = tmp_path / "hosts"
        self.hosts.write_text("127.0.0.1 llm.test\n127.0.0.1 other.test\n")
        self.policy = tmp_path / "policy.yaml"
        self.policy.write_text(
            "version: 1\nenforce: true\ndomains:\n"
            f"  - name: llm.test\n    ports: [{upstream.port}]\n"
            f"  - name: other.test\n    ports: [{upstream.port}]\n")

    def cordon(self, *args, input=None, timeout=60):
        env = dict(os.environ, CORDON_STATE=str(self.state))
        return run([CORDON, *args], input=input, timeout=timeout, env=env)

    def agent(self, name, manifest, code):
        d = self.tmp / name
        d.mkdir()
        (d / "agent.json").write_text(json.dumps(manifest))
        (d / "main.py").write_text(code)
        return d

    def run(self, agent_dir, input_obj=None, *extra):
        inp = self.tmp / "input.json"
        inp.write_text(json.dumps(input_obj or {}))
        r = self.cordon("run", "--json", "--policy", self.policy, "--hosts", self.hosts,
                        "--allow-private", f"127.0.0.1:{self.up.port}", "-i", inp, *extra,
                        agent_dir)
        events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        return r, events

    def result(self, events):
        fin = [e for e in events if e["type"] == "run.finished"][-1]
        return json.loads((Path(fin["run_dir"]) / "result.json").read_text()), Path(fin["run_dir"])


@pytest.fixture
def env(tmp_path, upstream):
    return Env(tmp_path, upstream)


CLIENT = r'''
import json, os, sys, urllib.request, urllib.error
inp = json.load(open("/workspace/input.json"))
out = {}
for name, url, hdr in inp["calls"]:
    headers = {}
    if hdr:
        headers["Authorization"] = "Bearer " + os.environ["API_KEY"]
    req = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out[name] = r.status
    except urllib.error.HTTPError as e:
        out[name] = e.code
    except OSError as e:
        out[name] = str(e)
json.dump(out, open("/workspace/output.json", "w"))
'''


def manifest(**kw):
    m = {"name": "netagent", "version": "1", "entrypoint": ["python3", "/agent/main.py"],
         "profile": "deployment", "required_secrets": ["API_KEY"],
         "egress": {"domains": ["llm.test", "other.test"],
                    "secrets": {"API_KEY": ["llm.test"]}}}
    m.update(kw)
    return m


def set_secret(env):
    r = env.cordon("secret", "set", "API_KEY", input=SECRET)
    assert r.returncode == 0, r.stderr


def test_secret_goes_only_where_it_is_scoped(env, upstream):
    set_secret(env)
    a = env.agent("net", manifest(), CLIENT)
    url = lambda host: f"http://{host}:{upstream.port}/x"
    r, events = env.run(a, {"calls": [["scoped", url("llm.test"), True],
                                      ["elsewhere", url("other.test"), True],
                                      ["plain", url("other.test"), False]]})
    assert r.returncode == 0, r.stderr
    res, run_dir = env.result(events)
    assert res["output"] == {"scoped": 200, "elsewhere": 403, "plain": 200}
    blocked = [e for e in events if e["type"] == "egress.blocked"]
    assert len(blocked) == 1 and blocked[0]["hostname"] == "other.test"
    assert "credential" in json.dumps(blocked[0])
    # The upstream saw the key once: from the scoped call.
    seen = [h.get("Authorization") for (_, _, h, _) in upstream.log]
    assert seen.count("Bearer " + SECRET) == 1
    # The audit log has all three and verifies.
    v = env.cordon("audit", "verify", "--json", run_dir / "audit.jsonl")
    assert v.returncode == 0 and json.loads(v.stdout)["lines"] == 3
    assert res["audit"]["records"] == 3 and res["egress"]["blocked"] == 1
    entries = [json.loads(l) for l in (run_dir / "audit.jsonl").read_text().splitlines()]
    assert sorted(e["hostname"] for e in entries) == ["llm.test", "other.test", "other.test"]
    # Both requests that went out count as allowed, also when the client
    # (which reads only the status) closes before the body has passed.
    assert res["egress"]["allowed"] == 2


def test_unscoped_secret_is_blocked_everywhere(env, upstream):
    set_secret(env)
    m = manifest()
    del m["egress"]["secrets"]
    a = env.agent("net", m, CLIENT)
    r, events = env.run(a, {"calls": [["llm", f"http://llm.test:{upstream.port}/x", True]]})
    res, _ = env.result(events)
    assert res["output"] == {"llm": 403}
    assert not upstream.log


def test_agent_cannot_widen_the_operator_policy(env, upstream):
    # The agent lists a domain the operator does not allow: still refused.
    m = manifest(required_secrets=[], egress={"domains": ["llm.test", "extra.test"]})
    a = env.agent("net", m, CLIENT)
    env.hosts.write_text(env.hosts.read_text() + "127.0.0.1 extra.test\n")
    r, events = env.run(a, {"calls": [["extra", f"http://extra.test:{upstream.port}/x", False],
                                      ["llm", f"http://llm.test:{upstream.port}/x", False],
                                      ["other", f"http://other.test:{upstream.port}/x", False]]})
    res, _ = env.result(events)
    # other.test is allowed by the operator but not listed by the agent.
    assert res["output"] == {"extra": 403, "llm": 200, "other": 403}


def test_offline_agent_has_no_network(env, upstream):
    a = env.agent("off", {"name": "off", "version": "1",
                          "entrypoint": ["python3", "/agent/main.py"]}, CLIENT.replace(
                              'os.environ["API_KEY"]', '"x"'))
    r, events = env.run(a, {"calls": [["llm", f"http://llm.test:{upstream.port}/x", False]]})
    res, _ = env.result(events)
    assert res["output"]["llm"] != 200
    assert not upstream.log
    ready = [e for e in events if e["type"] == "sandbox.ready"][0]
    assert ready["network"] == "none"


def test_secret_in_events_is_redacted_even_when_json_escaped(env, upstream):
    # A value with a quote and a backslash is escaped in JSON; redaction
    # happens before serialising, so the escaped form cannot slip through.
    tricky = 'ab"cd\\ef-0123456789'
    r = env.cordon("secret", "set", "API_KEY", input=tricky)
    assert r.returncode == 0
    code = ('import os, json\n'
            'open(os.environ["CORDON_STEPS"], "w").write(json.dumps({"name": os.environ["API_KEY"]}) + "\\n")\n'
            'print(os.environ["API_KEY"])\n')
    a = env.agent("leak", {"name": "leak", "version": "1", "required_secrets": ["API_KEY"],
                           "entrypoint": ["python3", "/agent/main.py"]}, code)
    r, events = env.run(a)
    assert r.returncode == 0, r.stderr
    _, run_dir = env.result(events)
    escaped = json.dumps(tricky)[1:-1]
    for f in run_dir.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert tricky.encode() not in data, f
            assert escaped.encode() not in data, f
    assert "[REDACTED:API_KEY]" in (run_dir / "stdout").read_text()
    assert any(e["type"] == "step" and e["step"]["name"] == "[REDACTED:API_KEY]" for e in events)


def test_demo_agent_end_to_end(tmp_path):
    """make demo's script, against the binary under test."""
    envv = dict(os.environ, CORDON_DEMO_STATE=str(tmp_path / "demo"))
    bindir = Path(CORDON).parent
    if bindir != ROOT / "build":
        pytest.skip("scripts/demo runs build/cordon")
    r = subprocess.run([str(ROOT / "scripts" / "demo")], env=envv, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✗ blocked GET exfil.example.com:80" in r.stdout
    assert "artifact brief.md" in r.stdout
    assert "[REDACTED:DEMO_LLM_KEY]" in r.stdout
    assert "intact, 2 lines" in r.stdout
    # The closing hints work pasted into a shell that knows nothing of the
    # demo's state directory.
    hints = [l.strip() for l in r.stdout.splitlines() if l.strip().startswith("CORDON_STATE=")]
    assert len(hints) == 2, r.stdout
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    for h in hints:
        done = subprocess.run(["/bin/sh", "-c", h], env=clean, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 0, h + "\n" + done.stderr


def test_workspace_policy_narrows_the_operators(env, upstream):
    """STATE/policies/WS.yaml (what PUT /v1/policy writes) narrows the
    operator's STATE/policy.yaml for that workspace's runs only; a
    workspace policy that tries to widen it fails the run."""
    (env.state / "policies").mkdir(mode=0o700)
    (env.state / "policy.yaml").write_text(env.policy.read_text())
    (env.state / "policies" / "default.yaml").write_text(
        f"version: 1\ndomains:\n  - name: other.test\n    ports: [{upstream.port}]\n")
    m = manifest(required_secrets=[], egress={"domains": ["llm.test"]})
    a = env.agent("net", m, CLIENT)
    inp = env.tmp / "in.json"
    inp.write_text(json.dumps({"calls": [["llm", f"http://llm.test:{upstream.port}/x", False]]}))

    def llm(ws):
        r = env.cordon("run", "--json", "-w", ws, "--hosts", env.hosts, "--allow-private",
                       f"127.0.0.1:{upstream.port}", "-i", inp, a)
        events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        return r, env.result(events)[0]["output"]["llm"] if r.returncode == 0 else None

    assert llm("default")[1] == 403 and llm("other")[1] == 200
    # --policy replaces the operator's file; the workspace still narrows it.
    r = env.cordon("run", "--json", "--policy", env.policy, "--hosts", env.hosts,
                   "--allow-private", f"127.0.0.1:{upstream.port}", "-i", inp, a)
    assert r.returncode == 0, r.stderr
    assert env.result([json.loads(l) for l in r.stdout.splitlines()])[0]["output"]["llm"] == 403
    (env.state / "policies" / "default.yaml").write_text("version: 1\nenforce: false\n")
    r, _ = llm("default")
    assert r.returncode == 125 and "policies/default.yaml:2: enforce: not allowed" in r.stdout + r.stderr


def _rate_env(env, upstream, operator_rules):
    env.hosts.write_text("".join(f"127.0.0.1 {h}.rl.test\n" for h in "abc"))
    env.policy.write_text(
        "version: 1\nenforce: true\nlimits:\n  global_requests_per_minute: 1000\ndomains:\n" +
        "".join(f"  - name: '{n}'\n    ports: [{upstream.port}]\n"
                f"    requests_per_minute: {rpm}\n" for n, rpm in operator_rules))


def _rate_calls(upstream, per_host=2):
    return {"calls": [[f"{h}{i}", f"http://{h}.rl.test:{upstream.port}/x", False]
                      for i in range(per_host) for h in "abc"]}


def test_agent_names_share_the_operator_rate_limit(env, upstream):
    """Listing several names under one operator wildcard must not multiply
    the operator's limit: they all count in the wildcard's window."""
    _rate_env(env, upstream, [("*.rl.test", 3)])
    m = manifest(required_secrets=[],
                 egress={"domains": ["a.rl.test", "b.rl.test", "c.rl.test"]})
    a = env.agent("net", m, CLIENT)
    r, events = env.run(a, _rate_calls(upstream))
    assert r.returncode == 0, r.stderr
    out = env.result(events)[0]["output"]
    assert sorted(out.values()) == [200, 200, 200, 429, 429, 429], out
    assert len(upstream.log) == 3


def test_agent_rate_limit_covers_its_whole_entry(env, upstream):
    """An agent's own limit on a wildcard counts every host under it, even
    where several operator rules meet that wildcard."""
    _rate_env(env, upstream, [("a.rl.test", 0), ("b.rl.test", 0), ("c.rl.test", 0)])
    m = manifest(required_secrets=[],
                 egress={"domains": ["*.rl.test"],
                         "rules": [{"domain": "*.rl.test", "requests_per_minute": 2}]})
    a = env.agent("net", m, CLIENT)
    r, events = env.run(a, _rate_calls(upstream))
    assert r.returncode == 0, r.stderr
    out = env.result(events)[0]["output"]
    assert sorted(out.values()) == [200, 200, 429, 429, 429, 429], out


def test_cordon_tokens_are_redacted_and_never_sent(env, upstream):
    """The run's own MCP token (in its environment) and a cordon API key it
    came across are redacted from everything the run records, in either
    case and whatever they are glued to, and egress refuses to carry them,
    though the run was granted no secrets at all."""
    api_key = "cdn_live_" + "7e1f" * 16
    code = (
        'import os, json, sys, urllib.request, urllib.error\n'
        'tok = os.environ["CORDON_MCP_TOKEN"]\n'
        f'key = "{api_key}"\n'
        'print("token=" + tok, flush=True)\n'
        'print("KEY:" + key.upper(), file=sys.stderr, flush=True)\n'
        'sys.stdout.write("x" + tok[:20]); sys.stdout.flush()\n'
        'sys.stdout.write(tok[20:] + "\\n")\n'
        'open(os.environ["CORDON_STEPS"], "w").write(json.dumps({"name": "k" + key}) + "\\n")\n'
        'out = {}\n'
        'for name, body in [("token", tok), ("key", "note=x" + key), ("plain", "hello")]:\n'
        f'    req = urllib.request.Request("http://other.test:{upstream.port}/x", data=body.encode(), method="POST")\n'
        '    try:\n'
        '        with urllib.request.urlopen(req, timeout=10) as r: out[name] = r.status\n'
        '    except urllib.error.HTTPError as e: out[name] = e.code\n'
        'json.dump(out, open("/workspace/output.json", "w"))\n')
    m = manifest(required_secrets=[], egress={"domains": ["other.test"]})
    a = env.agent("tokens", m, code)
    r, events = env.run(a)
    assert r.returncode == 0, r.stderr
    res, run_dir = env.result(events)
    assert res["output"] == {"token": 403, "key": 403, "plain": 200}
    blocked = [e for e in events if e["type"] == "egress.blocked"]
    assert len(blocked) == 2
    assert "cordon_mcp_token" in json.dumps(blocked) and "cordon_api_key" in json.dumps(blocked)
    # A body is inspected as it streams: a refused request's head may have
    # left, never the token.
    bodies = [b for (_, _, _, b) in upstream.log]
    assert bodies.count(b"hello") == 1
    assert not any(b"cdn_" in b.lower() for b in bodies)
    stdout = (run_dir / "stdout").read_text()
    assert stdout.count("[REDACTED:cordon_mcp_token]") == 2, stdout
    assert "[REDACTED:cordon_api_key]" in (run_dir / "stderr").read_text()
    assert any(e["type"] == "step" and e["step"]["name"] == "k[REDACTED:cordon_api_key]"
               for e in events)
    for f in run_dir.rglob("*"):
        if f.is_file():
            data = f.read_bytes().lower()
            assert api_key.encode() not in data, f
            assert b"cdn_mcp_" not in data, f
