# SPDX-License-Identifier: Apache-2.0
"""cordon run and the state commands, attacked through the real binary.

Every test has its own state directory under tmp_path and builds its agents
there. The agents are shell scripts (/bin/sh /agent/run.sh) that play the
hostile part: they leak secrets, plant symlinks, fifos and hard links, write
broken outputs, run out of time and memory, and look for each other.
"""
import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, cgroup_leftovers, sandbox_processes, wait_until

SECRET = "zq-S3cr3t-Value-9137"  # 20 bytes: raw and base64 forms are redacted
OTHER_SECRET = "other-Val-55555"


# ------------------------------------------------------------------ helpers

@pytest.fixture
def state(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    (tmp_path / "cwd").mkdir()
    return d


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CORDON_STATE", "CORDON_WORKSPACE", "CORDON_MASTER_KEY")}
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def cordon(state, cmd, *args, stdin=None, timeout=60, cwd=None, env=None):
    """cordon CMD --state STATE ARGS... (options before operands: `run`
    stops parsing at the agent), run from an empty directory so that a
    registered NAME never resolves to a directory by accident."""
    argv = [CORDON, cmd, "--state", str(state), *[str(a) for a in args]]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, errors="replace",
                          timeout=timeout, cwd=cwd or state.parent / "cwd", env=clean_env(env))


def make_agent(root, name, script="", manifest=None, files=None, dirname=None):
    """An agent directory: agent.json (name, version "1", /bin/sh
    /agent/run.sh, plus `manifest`) and run.sh holding `script`."""
    d = Path(root) / "agents" / (dirname or name)
    d.mkdir(parents=True, exist_ok=True)
    m = {"name": name, "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"]}
    m.update(manifest or {})
    (d / "agent.json").write_text(json.dumps(m))
    (d / "run.sh").write_text(script)
    for rel, data in (files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return d


def events_of(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def crun(state, agent, *opts, stdin=None, timeout=60, **kw):
    """cordon run --json; returns (process, events)."""
    r = cordon(state, "run", "--json", *opts, agent, stdin=stdin, timeout=timeout, **kw)
    return r, events_of(r.stdout)


def run_dir(state, run_id):
    return state / "runs" / run_id


def result_of(state, run_id):
    return json.loads((run_dir(state, run_id) / "result.json").read_text())


def finished(evs):
    fin = [e for e in evs if e["type"] == "run.finished"]
    assert len(fin) == 1, evs
    return fin[0]


def run_id_of(evs):
    return evs[0]["run_id"]


def runs_list(state, *args):
    r = cordon(state, "runs", "list", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_no_run_recorded(state):
    assert runs_list(state) == []
    runs = state / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def set_secret(state, name, value, ws=None):
    args = ["set", name] + (["-w", ws] if ws else [])
    r = cordon(state, "secret", *args, stdin=value + "\n")
    assert r.returncode == 0, r.stderr


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64_cores(value):
    """The base64 text of the value alone (standard and url-safe), cut to
    the characters the value's bits alone decide."""
    std = base64.b64encode(value.encode()).decode().rstrip("=")
    std = std[:len(value) * 8 // 6]
    return {std, std.replace("+", "-").replace("/", "_")}


def all_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            yield Path(dirpath) / n


# ----------------------------------------------------------- 1. happy path

HAPPY = r"""
set -e
in=$(cat /workspace/input.json)
printf '{"greeting":"hello","input":%s}\n' "$in" > /workspace/output.json
echo '{"name":"parse","progress":0.5}' > "$CORDON_STEPS"
echo 'plain step' > "$CORDON_STEPS"
printf 'report for %s\n' "$CORDON_RUN_ID" > /workspace/out/report.md
echo "to stdout"
echo "to stderr" >&2
if touch /agent/x 2>/dev/null; then echo AGENT-WRITABLE; fi
if { echo evil >> /agent/run.sh; } 2>/dev/null; then echo AGENT-SCRIPT-WRITABLE; fi
"""


def test_happy_path_records_everything(state, tmp_path):
    ag = make_agent(tmp_path, "happy", HAPPY)
    inp = {"who": "world", "n": 3, "nested": {"é": [1, 2]}}
    (tmp_path / "in.json").write_text(json.dumps(inp, indent=4))
    r, evs = crun(state, ag, "-i", tmp_path / "in.json")
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)

    # events: order, seq, one run id, identical to events.ndjson
    types = [e["type"] for e in evs]
    assert types == ["run.created", "sandbox.ready", "step", "step", "artifact.saved",
                     "run.finished"], types
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert {e["run_id"] for e in evs} == {rid}
    d = run_dir(state, rid)
    # ...but for the host path the local caller is shown, and the record
    # never holds
    recorded = events_of((d / "events.ndjson").read_text())
    assert all("run_dir" not in e for e in recorded)
    assert evs[0]["run_dir"] == evs[-1]["run_dir"] == str(d)
    assert recorded == [{k: v for k, v in e.items() if k != "run_dir"} for e in evs]
    assert evs[0]["agent"] == "happy" and evs[0]["version"] == 0
    assert evs[0]["input_sha256"] == sha256(canonical(inp).encode())

    # the agent's sha256 is what registering the same directory reports
    reg = cordon(state, "agent", "register", "--json", ag)
    assert reg.returncode == 0, reg.stderr
    reg = json.loads(reg.stdout)
    res = result_of(state, rid)
    assert res["resolved"] == {"agent": {"name": "happy", "version": 0, "sha256": reg["sha256"]},
                               "capabilities": [], "env": None, "deps": None}
    assert evs[0]["sha256"] == reg["sha256"]

    assert res["run_id"] == rid and res["workspace"] == "default"
    assert res["status"] == "succeeded" and res["exit_code"] == 0
    assert res["timed_out"] is False and res["oom_killed"] is False and res["signal"] == 0
    assert res["output"] == {"greeting": "hello", "input": inp}
    assert finished(evs)["output"] == res["output"]
    assert res["input_sha256"] == sha256(canonical(inp).encode())
    p = res["protections"]
    assert p["userns"] is True and p["seccomp"] is True and p["landlock_abi"] >= 1
    assert p["degraded"] == [] and p["rootless"] is False
    assert res["steps"] == 2 and res["secrets"] == []

    # artifacts: the recorded hash is the hash of the bytes on disk
    report = (d / "artifacts" / "report.md").read_bytes()
    assert report == f"report for {rid}\n".encode()
    assert res["artifacts"] == [{"name": "report.md", "original": "report.md",
                                 "sha256": sha256(report), "size": len(report)}]
    blob = state / "blobs" / sha256(report)[:2] / sha256(report)[2:]
    assert blob.read_bytes() == report
    assert sorted(os.listdir(d / "artifacts")) == ["report.md"]

    assert json.loads((d / "steps.json").read_text()) == [
        {"name": "parse", "progress": 0.5}, {"text": "plain step"}]
    assert (d / "stdout").read_text() == "to stdout\n"
    assert (d / "stderr").read_text() == "to stderr\n"
    assert res["stdout"] == {"file": "stdout", "bytes": 10, "kept": 10, "truncated": False}

    # the snapshot at /agent is read-only, and the checkout stayed intact
    assert "WRITABLE" not in (d / "stdout").read_text()
    tree = state / "trees" / reg["sha256"]
    assert (tree / "run.sh").read_text() == HAPPY

    # runs list, runs show, logs
    lst = runs_list(state)
    assert len(lst) == 1
    assert {k: lst[0][k] for k in ("id", "agent", "version", "sha256", "status", "exit_code")} \
        == {"id": rid, "agent": "happy", "version": 0, "sha256": reg["sha256"],
            "status": "succeeded", "exit_code": 0}
    assert runs_list(state, "--agent", "happy")[0]["id"] == rid
    assert runs_list(state, "--agent", "other") == []
    assert runs_list(state, "--status", "failed") == []
    assert runs_list(state, "--status", "succeeded")[0]["id"] == rid
    show = cordon(state, "runs", "show", "--json", rid)
    assert show.returncode == 0, show.stderr
    show = json.loads(show.stdout)
    assert show["id"] == rid and show["status"] == "succeeded"
    assert show["run_dir"] == str(d)
    assert show["result"] == res
    logs = cordon(state, "logs", "--json", rid)
    assert logs.returncode == 0, logs.stderr
    assert events_of(logs.stdout) == recorded
    follow = cordon(state, "logs", "--follow", "--json", rid, timeout=10)
    assert follow.returncode == 0 and events_of(follow.stdout) == recorded
    human = cordon(state, "logs", rid)
    assert human.returncode == 0 and "succeeded" in human.stdout


def test_input_from_stdin_and_default(state, tmp_path):
    ag = make_agent(tmp_path, "echo", "cat /workspace/input.json")
    r, evs = crun(state, ag, "-i", "-", stdin='{"b": 2, "a": [true, null]}')
    assert r.returncode == 0, r.stderr
    out = (run_dir(state, run_id_of(evs)) / "stdout").read_text()
    assert json.loads(out) == {"a": [True, None], "b": 2}
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    assert json.loads((run_dir(state, run_id_of(evs)) / "stdout").read_text()) == {}


def test_capture_limit_truncates_stdout(state, tmp_path):
    ag = make_agent(tmp_path, "loud", "head -c 5000 /dev/zero | tr '\\0' y; echo e >&2")
    r, evs = crun(state, ag, "--capture", "100")
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)
    res = result_of(state, rid)
    assert res["stdout"] == {"file": "stdout", "bytes": 5000, "kept": 100, "truncated": True}
    assert (run_dir(state, rid) / "stdout").read_text() == "y" * 100
    assert res["stderr"]["truncated"] is False
    for bad in ["0", "65m", "lots"]:
        r = cordon(state, "run", "--capture", bad, ag)
        assert r.returncode == 125 and "--capture" in r.stderr


def test_steps_are_lines_and_hostile_ones_are_contained(state, tmp_path):
    script = r"""
printf '\377\376bad\n' > $CORDON_STEPS
printf '[1,2]\n' > $CORDON_STEPS
printf '{"a":1,"a":2}\n' > $CORDON_STEPS
head -c 20000 /dev/zero | tr '\0' x > $CORDON_STEPS; echo > $CORDON_STEPS
printf '{"name":"ok"}\n\n\n' > $CORDON_STEPS
"""
    ag = make_agent(tmp_path, "steps", script)
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    steps = json.loads((run_dir(state, run_id_of(evs)) / "steps.json").read_text())
    assert steps == [{"text": "(not valid UTF-8)"}, {"text": "[1,2]"},
                     {"text": '{"a":1,"a":2}'}, {"name": "ok"}]
    notes = [e["step"] for e in evs if e["type"] == "step" and "note" in e["step"]]
    assert notes and "16 KiB" in notes[0]["note"]
    assert result_of(state, run_id_of(evs))["steps"] == 4


def test_last_step_without_newline_is_kept(state, tmp_path):
    ag = make_agent(tmp_path, "partial", "echo first > $CORDON_STEPS\n"
                                         "printf 'final' > $CORDON_STEPS\n")
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    steps = json.loads((run_dir(state, run_id_of(evs)) / "steps.json").read_text())
    assert steps == [{"text": "first"}, {"text": "final"}]


def test_progress_view_does_not_pass_terminal_escapes(state, tmp_path):
    script = r"""printf '\033]0;pwned\007\033[2Jhello\n' > $CORDON_STEPS"""
    ag = make_agent(tmp_path, "esc", script)
    r = cordon(state, "run", ag)  # progress view; stdout is not a tty, so no colours
    assert r.returncode == 0, r.stderr
    assert "hello" in r.stdout
    rid = runs_list(state)[0]["id"]
    logs = cordon(state, "logs", rid)
    assert "hello" in logs.stdout
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\x1b" not in logs.stdout and "\x07" not in logs.stdout


def test_setup_runs_first_in_the_same_workspace(state, tmp_path):
    ag = make_agent(tmp_path, "withsetup", "ls /workspace > $CORDON_STEPS\n",
                    manifest={"setup": ["/bin/sh", "-c", "touch /workspace/from-setup"]})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)
    steps = [s["text"] for s in
             json.loads((run_dir(state, rid) / "steps.json").read_text())]
    assert "from-setup" in steps
    setup = [e for e in evs if e["type"] == "setup.finished"]
    assert len(setup) == 1 and setup[0]["exit_code"] == 0
    assert "setup_ms" in result_of(state, rid)


def test_failed_setup_stops_the_run(state, tmp_path):
    ag = make_agent(tmp_path, "badsetup", "echo main > $CORDON_STEPS\n",
                    manifest={"setup": ["/bin/sh", "-c", "exit 3"]})
    r, evs = crun(state, ag)
    assert r.returncode == 3, r.stderr
    fin = finished(evs)
    assert fin["status"] == "failed" and fin["exit_code"] == 3
    assert [e["exit_code"] for e in evs if e["type"] == "setup.finished"] == [3]
    assert not [e for e in evs if e["type"] == "step"]


def test_setup_finished_comes_before_the_entrypoints_steps(state, tmp_path):
    ag = make_agent(tmp_path, "order", "echo main > $CORDON_STEPS\nsleep 0.3\n",
                    manifest={"setup": ["/bin/sh", "-c", "echo setup > $CORDON_STEPS"]})
    for _ in range(3):
        r, evs = crun(state, ag)
        assert r.returncode == 0, r.stderr
        seq = {}
        for e in evs:
            if e["type"] == "setup.finished":
                seq["setup.finished"] = e["seq"]
            elif e["type"] == "step":
                seq[e["step"].get("text")] = e["seq"]
        assert seq["setup"] < seq["setup.finished"] < seq["main"], evs


# ---------------------------------------------------- 2. registry versions

def test_registry_versions_by_content(state, tmp_path):
    src = make_agent(tmp_path, "rv", "echo v1 > $CORDON_STEPS\n")

    def register(*extra):
        r = cordon(state, "agent", "register", "--json", *extra, src)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def ran(ref, *opts):
        r, evs = crun(state, ref, *opts)
        assert r.returncode == 0, r.stderr
        rid = run_id_of(evs)
        steps = json.loads((run_dir(state, rid) / "steps.json").read_text())
        return steps[0]["text"], result_of(state, rid)["resolved"]["agent"]

    v1 = register()
    assert v1["created"] is True and v1["version"] == 1 and v1["name"] == "rv"
    os.utime(src / "run.sh", (0, 0))  # timestamps are not content
    again = register()
    assert again["created"] is False and again["version"] == 1
    assert again["sha256"] == v1["sha256"]

    (src / "run.sh").write_text("echo v2 > $CORDON_STEPS\n")
    v2 = register()
    assert v2["created"] is True and v2["version"] == 2 and v2["sha256"] != v1["sha256"]

    # edited after registering: the registered bytes are what runs
    (src / "run.sh").write_text("echo v3 > $CORDON_STEPS\n")
    assert ran("rv") == ("v2", {"name": "rv", "version": 2, "sha256": v2["sha256"]})
    assert ran("rv@2") == ("v2", {"name": "rv", "version": 2, "sha256": v2["sha256"]})
    assert ran("rv@1") == ("v1", {"name": "rv", "version": 1, "sha256": v1["sha256"]})
    text, agent = ran(src)  # the directory itself, unregistered
    assert text == "v3" and agent["version"] == 0

    # the mode's execute bit is content
    (src / "run.sh").write_text("echo v2 > $CORDON_STEPS\n")
    assert register()["version"] == 2 and register()["created"] is False
    os.chmod(src / "run.sh", 0o755)
    assert register()["version"] == 3

    # another workspace counts its own versions
    other = register("-w", "other")
    assert other["version"] == 1 and other["workspace"] == "other"

    lst = cordon(state, "agent", "list", "--json")
    assert [(a["name"], a["version"]) for a in json.loads(lst.stdout)] == [("rv", 3)]

    for ref, msg in [("rv@9", "no version 9"), ("rv@0", "version"), ("rv@x", "version"),
                     ("rv@", "version"), ("rv@-1", "version"), ("nope", "not registered"),
                     ("Bad_Name", "agent"), ("rv@1@2", "version")]:
        r = cordon(state, "run", ref)
        assert r.returncode == 125, (ref, r.stderr)
        assert msg in r.stderr, (ref, r.stderr)
    lst = runs_list(state)  # newest first
    assert [x["version"] for x in lst] == [0, 1, 2, 2]


def test_registered_agent_cannot_tamper_with_its_snapshot(state, tmp_path):
    script = ("cat /agent/data.txt\n"
              "{ echo evil > /agent/data.txt; } 2>/dev/null && echo WROTE\n"
              "rm -f /agent/data.txt 2>/dev/null\n"
              "chmod 777 /agent 2>/dev/null && echo CHMOD\n"
              "true\n")
    src = make_agent(tmp_path, "tamper", script, files={"data.txt": "pristine\n"})
    assert cordon(state, "agent", "register", src).returncode == 0
    outs = []
    for _ in range(2):
        r, evs = crun(state, "tamper")
        assert r.returncode == 0, r.stderr
        outs.append((run_dir(state, run_id_of(evs)) / "stdout").read_text())
    assert outs == ["pristine\n", "pristine\n"]


def test_registering_refuses_symlinks_inside_the_agent(state, tmp_path):
    src = make_agent(tmp_path, "linky", "cat /agent/secret.txt\n")
    (src / "secret.txt").symlink_to("/etc/shadow")
    r = cordon(state, "agent", "register", src)
    assert r.returncode == 125
    assert "symlink" in r.stderr.lower() or "symbolic link" in r.stderr.lower()
    r = cordon(state, "run", src)
    assert r.returncode == 125
    assert_no_run_recorded(state)
    assert json.loads(cordon(state, "agent", "list", "--json").stdout) == []


def _plant(kind, d):
    if kind == "fifo":
        os.mkfifo(d / "pipe")
    elif kind == "socket":
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(d / "sock"))
        s.close()
    elif kind == "newline in a name":
        (d / "a\nb").write_text("x")
    elif kind == "control byte in a name":
        (d / "a\x1b[31mb").write_text("x")
    elif kind == "nested symlink out of the tree":
        (d / "sub").mkdir()
        (d / "sub" / "up").symlink_to("../..")
    elif kind == "invalid UTF-8 name":
        os.close(os.open(bytes(d) + b"/bad\xff", os.O_CREAT | os.O_WRONLY, 0o644))


@pytest.mark.parametrize("kind", ["fifo", "socket", "newline in a name",
                                  "control byte in a name", "nested symlink out of the tree",
                                  "invalid UTF-8 name"])
def test_agent_directory_with_unsnapshottable_entries_is_refused(state, tmp_path, kind):
    src = make_agent(tmp_path, "odd", "echo RAN\n")
    _plant(kind, src)
    for cmd in (["run", src], ["agent", "register", src]):
        r = cordon(state, *cmd, timeout=20)
        assert r.returncode == 125, (kind, cmd, r.stderr)
        assert "tree" in r.stderr and "\x1b" not in r.stderr, r.stderr
    assert_no_run_recorded(state)


# Issue 12: agents with npm's node_modules/.bin and a virtualenv's links.
LINKS_SCRIPT = r"""
/agent/node_modules/.bin/hello
/agent/node_modules/.bin/hello-again
cat /agent/venv/lib64/python3.11/site-packages/mod.txt
/agent/venv/bin/python
readlink /agent/node_modules/.bin/hello
ls /agent/venv/lib64/python3.11/site-packages
cat /capabilities/tools/current/t.txt
"""


def make_linked_agent(tmp_path):
    d = make_agent(tmp_path, "linked", LINKS_SCRIPT, manifest={"capabilities": ["tools"]})
    pkg = d / "node_modules" / "hello" / "bin"
    pkg.mkdir(parents=True)
    (pkg / "cli.sh").write_text("#!/bin/sh\necho hello from $0\n")
    (pkg / "cli.sh").chmod(0o755)
    (d / "node_modules" / ".bin").mkdir()
    (d / "node_modules" / ".bin" / "hello").symlink_to("../hello/bin/cli.sh")
    (d / "node_modules" / ".bin" / "hello-again").symlink_to("hello")  # a link to a link
    site = d / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "mod.txt").write_text("module bytes\n")
    (d / "venv" / "lib64").symlink_to("lib")  # a link to a directory
    (d / "venv" / "bin").mkdir()
    (d / "venv" / "bin" / "python3.11").write_text("#!/bin/sh\necho venv python\n")
    (d / "venv" / "bin" / "python3.11").chmod(0o755)
    (d / "venv" / "bin" / "python3").symlink_to("python3.11")
    (d / "venv" / "bin" / "python").symlink_to("python3")
    tools = tmp_path / "tools"
    (tools / "v1").mkdir(parents=True)
    (tools / "v1" / "t.txt").write_text("tool v1\n")
    (tools / "current").symlink_to("v1")
    return d, tools


def test_agent_and_capability_links_inside_the_tree_work_in_the_sandbox(state, tmp_path):
    d, tools = make_linked_agent(tmp_path)
    reg = cordon(state, "agent", "register", "--json", d)
    assert reg.returncode == 0, reg.stderr
    assert cordon(state, "capability", "register", "tools", tools).returncode == 0
    assert cordon(state, "grant", "linked", "tools").returncode == 0
    r, evs = crun(state, "linked")
    assert r.returncode == 0, r.stderr
    out = (run_dir(state, run_id_of(evs)) / "stdout").read_text()
    assert out.splitlines() == [
        "hello from /agent/node_modules/.bin/hello",
        "hello from /agent/node_modules/.bin/hello-again",
        "module bytes",
        "venv python",
        "../hello/bin/cli.sh",
        "mod.txt",
        "tool v1",
    ], out + (run_dir(state, run_id_of(evs)) / "stderr").read_text()
    # The run ran the registered tree, and the directory run directly is the
    # same tree (links hashed the same way).
    sha = json.loads(reg.stdout)["sha256"]
    assert evs[0]["sha256"] == sha
    # A link's target is part of the hash: retargeting it makes a new version.
    link = d / "node_modules" / ".bin" / "hello-again"
    link.unlink()
    link.symlink_to("../hello/bin/cli.sh")
    again = json.loads(cordon(state, "agent", "register", "--json", d).stdout)
    assert again["sha256"] != sha and again["version"] == 2


def _bad_link(kind, d):
    """Plants a link that must be refused; returns its path in the tree."""
    (d / "sub").mkdir()
    if kind == "absolute":
        (d / "sub" / "py").symlink_to("/usr/bin/python3")
        return "sub/py"
    if kind == "dotdot to /etc/passwd":
        (d / "sub" / "pw").symlink_to("../../etc/passwd")
        return "sub/pw"
    if kind == "link to a link that escapes":
        (d / "sub" / "up").symlink_to("..")  # the root: fine alone
        (d / "sub" / "out").symlink_to("up/../etc/passwd")
        return "sub/out"
    if kind == "link to a directory outside":
        (d / "sub" / "etc").symlink_to("../../../../../../etc")
        return "sub/etc"
    if kind == "dangling":
        (d / "sub" / "gone").symlink_to("nothing-here")
        return "sub/gone"
    if kind == "loop":
        (d / "sub" / "a").symlink_to("b")
        (d / "sub" / "b").symlink_to("a")
        return "sub/a"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["absolute", "dotdot to /etc/passwd",
                                  "link to a link that escapes", "link to a directory outside",
                                  "dangling", "loop"])
def test_links_that_leave_the_tree_or_dangle_are_refused_by_name(state, tmp_path, kind):
    src = make_agent(tmp_path, "evil", "cat /agent/sub/*\n")
    name = _bad_link(kind, src)
    for cmd in (["agent", "register", src], ["run", src],
                ["capability", "register", "evil", src]):
        r = cordon(state, *cmd, timeout=20)
        assert r.returncode == 125, (kind, cmd, r.stderr)
        assert f"{name}: is a symlink" in r.stderr, (kind, r.stderr)
    assert_no_run_recorded(state)
    assert json.loads(cordon(state, "agent", "list", "--json").stdout) == []


def test_agent_directory_given_through_a_symlink_is_fine(state, tmp_path):
    src = make_agent(tmp_path, "linked", "echo RAN\n")
    (tmp_path / "via").symlink_to(src)
    r, evs = crun(state, tmp_path / "via")
    assert r.returncode == 0, r.stderr
    reg = json.loads(cordon(state, "agent", "register", "--json", src).stdout)
    assert evs[0]["sha256"] == reg["sha256"]


def test_concurrent_registrations_and_secret_sets(state, tmp_path):
    dirs = [make_agent(tmp_path, "par", f"echo {i}\n", dirname=f"par{i}") for i in range(4)]
    procs = [subprocess.Popen([CORDON, "agent", "register", "--state", str(state), "--json",
                               str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=clean_env()) for d in dirs]
    procs += [subprocess.Popen([CORDON, "secret", "set", "--state", str(state), f"TOK{i}"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=clean_env())
              for i in range(4)]
    outs = []
    for i, p in enumerate(procs):
        out, err = p.communicate(f"value-number-{i}-xyz" if i >= 4 else None, timeout=60)
        assert p.returncode == 0, err
        outs.append(out)
    versions = sorted(json.loads(o)["version"] for o in outs[:4])
    assert versions == [1, 2, 3, 4]
    assert len({json.loads(o)["sha256"] for o in outs[:4]}) == 4
    # every secret opens: they share one workspace key
    ag = make_agent(tmp_path, "many", "env | grep -c value-number\n",
                    manifest={"required_secrets": [f"TOK{i}" for i in range(4)]})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    assert (run_dir(state, run_id_of(evs)) / "stdout").read_text() == "4\n"


def test_directory_run_uses_the_manifest_of_its_snapshot(state, tmp_path):
    import threading
    src = make_agent(tmp_path, "race", manifest={"entrypoint": ["/bin/sh", "-c", "echo A"]})
    docs = [json.dumps({"name": "race", "version": "1",
                        "entrypoint": ["/bin/sh", "-c", f"echo {x}"]}) for x in "AB"]
    spare = tmp_path / "spare.json"  # outside the agent: only renames happen inside
    stop = threading.Event()

    def flip():
        i = 0
        while not stop.is_set():
            spare.write_text(docs[i % 2])
            os.rename(spare, src / "agent.json")
            i += 1

    th = threading.Thread(target=flip)
    th.start()
    mismatches, ok = [], 0
    try:
        for _ in range(60):
            r = cordon(state, "run", "--json", src)
            if r.returncode != 0:
                continue  # the directory changed under the snapshot: refusing is fine
            evs = events_of(r.stdout)
            ok += 1
            ran = (run_dir(state, run_id_of(evs)) / "stdout").read_text().strip()
            snap = json.loads((state / "trees" / evs[0]["sha256"] / "agent.json").read_text())
            if snap["entrypoint"][2] != f"echo {ran}":
                mismatches.append((ran, snap["entrypoint"]))
                break
    finally:
        stop.set()
        th.join()
    assert ok > 0
    assert mismatches == []


# ------------------------------------------------ 3. malformed manifests

BASE = {"name": "bad", "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"]}


def _manifest_case(kind, d):
    p = d / "agent.json"
    if kind == "unknown key":
        p.write_text(json.dumps({**BASE, "egres": {}}))
        return 'unknown key "egres"'
    if kind == "version is a number":
        p.write_text(json.dumps({**BASE, "version": 1}))
        return "version"
    if kind == "entrypoint is a string":
        p.write_text(json.dumps({**BASE, "entrypoint": "/bin/sh /agent/run.sh"}))
        return "entrypoint"
    if kind == "timeout is a string":
        p.write_text(json.dumps({**BASE, "limits": {"timeout_seconds": "5"}}))
        return "limits.timeout_seconds"
    if kind == "missing entrypoint":
        p.write_text(json.dumps({"name": "bad", "version": "1"}))
        return 'missing key "entrypoint"'
    if kind == "bad name":
        p.write_text(json.dumps({**BASE, "name": "../Evil"}))
        return "name"
    if kind == "null value":
        p.write_text(json.dumps({**BASE, "env": None}))
        return "null"
    if kind == "duplicate key":
        p.write_text('{"name":"bad","name":"worse","version":"1","entrypoint":["x"]}')
        return "twice"
    if kind == "reserved secret":
        p.write_text(json.dumps({**BASE, "required_secrets": ["LD_PRELOAD"]}))
        return "LD_PRELOAD"
    if kind == "egress while offline":
        p.write_text(json.dumps({**BASE, "egress": {"domains": ["example.com"]}}))
        return "egress"
    if kind == "invalid JSON":
        p.write_text('{"name": "bad",\n "version": "1",,}')
        return "not valid JSON"
    if kind == "top level list":
        p.write_text("[]")
        return "object"
    if kind == "huge file":
        p.write_text(json.dumps(BASE)[:-1] + " " * 70000 + "}")
        return "65536"
    if kind == "symlinked agent.json":
        (d.parent / "elsewhere.json").write_text(json.dumps(BASE))
        p.symlink_to(d.parent / "elsewhere.json")
        return "symbolic link"
    if kind == "fifo agent.json":
        os.mkfifo(p)
        return "not a regular file"
    if kind == "directory agent.json":
        p.mkdir()
        return "agent.json"
    if kind == "no agent.json":
        return "agent.json"
    raise AssertionError(kind)


MANIFEST_CASES = ["unknown key", "version is a number", "entrypoint is a string",
                  "timeout is a string", "missing entrypoint", "bad name", "null value",
                  "duplicate key", "reserved secret", "egress while offline", "invalid JSON",
                  "top level list", "huge file", "symlinked agent.json", "fifo agent.json",
                  "directory agent.json", "no agent.json"]


@pytest.mark.parametrize("kind", MANIFEST_CASES)
def test_malformed_manifest_is_refused_before_anything_exists(state, tmp_path, kind):
    d = tmp_path / "agents" / "bad"
    d.mkdir(parents=True)
    (d / "run.sh").write_text("echo RAN\n")
    msg = _manifest_case(kind, d)
    r = cordon(state, "run", "--json", d, timeout=20)
    assert r.returncode == 125, (kind, r.stdout, r.stderr)
    assert msg in r.stderr, (kind, r.stderr)
    assert r.stderr.startswith("cordon: ")
    assert "RAN" not in r.stdout and r.stdout == ""
    assert_no_run_recorded(state)
    reg = cordon(state, "agent", "register", d, timeout=20)
    assert reg.returncode == 125 and msg in reg.stderr, (kind, reg.stderr)
    assert json.loads(cordon(state, "agent", "list", "--json").stdout) == []


# ------------------------------------------------------------- 4. secrets

LEAKY = r"""
echo "out:$TOK"
echo "err:$TOK" >&2
printf %s "$TOK" | base64
printf %s "$TOK" | base64 | tr '+/' '-_'
printf 'split:%s' "$(printf %s "$TOK" | cut -c1-7)"; sleep 0.05
printf '%s\n' "$(printf %s "$TOK" | cut -c8-)"
echo "step:$TOK" > $CORDON_STEPS
printf '{"k":"%s","%s":1}\n' "$TOK" "$TOK" > $CORDON_STEPS
printf '{"v":"%s","%s":[true,"%s"]}' "$TOK" "$TOK" "$TOK" > /workspace/output.json
echo "$TOK" > /workspace/out/leak.txt
printf 'prefix %s suffix' "$TOK" > /workspace/out/middle.md
printf %s "$TOK" | base64 > /workspace/out/leak64.txt
echo fine > /workspace/out/fine.txt
[ -n "${TOK:-}" ] && echo has-tok
[ -z "${OTHER+x}" ] && echo no-other
env | grep -c 'other-Val' || true
exit 0
"""


def test_secrets_declared_only_and_never_stored_in_clear(state, tmp_path):
    set_secret(state, "TOK", SECRET)
    set_secret(state, "OTHER", OTHER_SECRET)
    ag = make_agent(tmp_path, "leaky", LEAKY, manifest={"required_secrets": ["TOK"]})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)
    d = run_dir(state, rid)
    out = (d / "stdout").read_text()
    assert "has-tok" in out and "no-other" in out
    assert out.splitlines()[-1] == "0"  # OTHER's value is nowhere in the environment
    assert "out:[REDACTED:TOK]" in out and "split:[REDACTED:TOK]" in out
    assert "err:[REDACTED:TOK]" in (d / "stderr").read_text()
    res = result_of(state, rid)
    assert res["secrets"] == ["TOK"] and evs[0]["secrets"] == ["TOK"]
    assert res["output"] == {"v": "[REDACTED:TOK]", "[REDACTED:TOK]": [True, "[REDACTED:TOK]"]}
    skipped = {e["name"]: e["reason"] for e in evs if e["type"] == "artifact.skipped"}
    assert set(skipped) == {"leak.txt", "leak64.txt", "middle.md"}, skipped
    assert all("secret" in why for why in skipped.values()), skipped
    assert sorted(os.listdir(d / "artifacts")) == ["fine.txt"]
    assert [a["name"] for a in res["artifacts"]] == ["fine.txt"]

    # nothing under the state dir holds the value or its base64, in any
    # file (database, WAL, blobs, run files) or in any name
    needles = [SECRET.encode()] + [c.encode() for c in b64_cores(SECRET)]
    assert (state / "cordon.db").exists() and (state / "master.key").exists()
    checked = 0
    for p in all_files(state):
        assert SECRET not in p.name
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            checked += 1
            for n in needles:
                assert n not in data, (p, n)
    assert checked > 5


def test_secret_set_reads_stdin_and_strips_one_newline(state, tmp_path):
    r = cordon(state, "secret", "set", "--json", "TOK", stdin="abcdefgh\n\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size"] == 9  # one newline stripped
    r = cordon(state, "secret", "set", "--raw", "TOK2", stdin="abcdefgh\n")
    assert r.returncode == 0, r.stderr
    lst = json.loads(cordon(state, "secret", "list", "--json").stdout)
    assert [(x["name"], x["size"]) for x in lst] == [("TOK", 9), ("TOK2", 9)]
    assert cordon(state, "secret", "set", "EMPTY", stdin="").returncode == 125
    assert cordon(state, "secret", "set", "BAD/NAME", stdin="abcdefgh").returncode == 125
    r = cordon(state, "secret", "rm", "TOK2")
    assert r.returncode == 0
    r = cordon(state, "secret", "rm", "TOK2")
    assert r.returncode == 125 and "TOK2" in r.stderr
    assert [s["name"] for s in json.loads(cordon(state, "secret", "list", "--json").stdout)] \
        == ["TOK"]
    for p in all_files(state):
        if p.is_file():
            assert b"abcdefgh" not in p.read_bytes(), p


def test_missing_secret_stops_before_the_sandbox(state, tmp_path):
    set_secret(state, "TOK", SECRET)
    ag = make_agent(tmp_path, "needs", "echo RAN\n",
                    manifest={"required_secrets": ["TOK", "MISSING_ONE"]})
    r = cordon(state, "run", ag)
    assert r.returncode == 125
    assert "MISSING_ONE" in r.stderr and "RAN" not in r.stdout
    assert_no_run_recorded(state)
    assert not sandbox_processes()


def test_too_short_secret_is_refused(state, tmp_path):
    set_secret(state, "TINY", "abc")
    ag = make_agent(tmp_path, "tiny", "echo RAN\n", manifest={"required_secrets": ["TINY"]})
    r = cordon(state, "run", ag)
    assert r.returncode == 125 and "TINY" in r.stderr
    assert_no_run_recorded(state)


def test_secrets_and_runs_stay_in_their_workspace(state, tmp_path):
    set_secret(state, "TOK", SECRET, ws="alpha")
    ag = make_agent(tmp_path, "wsagent", '[ -n "$TOK" ] && echo has-tok\n',
                    manifest={"required_secrets": ["TOK"]})
    r = cordon(state, "run", "-w", "beta", ag)
    assert r.returncode == 125
    assert "TOK" in r.stderr and "beta" in r.stderr
    assert json.loads(cordon(state, "secret", "list", "-w", "beta", "--json").stdout) == []
    r = cordon(state, "run", ag)  # the default workspace has none either
    assert r.returncode == 125 and "TOK" in r.stderr

    r, evs = crun(state, ag, "-w", "alpha")
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)
    assert (run_dir(state, rid) / "stdout").read_text() == "has-tok\n"
    assert [x["id"] for x in runs_list(state, "-w", "alpha")] == [rid]
    assert runs_list(state, "-w", "beta") == [] and runs_list(state) == []
    for cmd in (["runs", "show", rid], ["logs", rid]):
        r = cordon(state, cmd[0], "-w", "beta", *cmd[1:])
        assert r.returncode == 125 and "no run" in r.stderr, cmd
    # an agent registered in alpha is not runnable by name from beta
    assert cordon(state, "agent", "register", "-w", "alpha", ag).returncode == 0
    r = cordon(state, "run", "-w", "beta", "wsagent")
    assert r.returncode == 125 and "not registered" in r.stderr
    assert cordon(state, "run", "-w", "../alpha", ag).returncode == 125


def test_secret_in_an_artifact_name_never_reaches_the_state_dir(state, tmp_path):
    set_secret(state, "TOK", SECRET)
    ag = make_agent(tmp_path, "namer", 'echo hi > "/workspace/out/$TOK.txt"\n',
                    manifest={"required_secrets": ["TOK"]})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    names = [str(p.relative_to(state)) for p in all_files(state)]
    assert not [n for n in names if SECRET in n], names
    d = run_dir(state, run_id_of(evs))
    for a in result_of(state, run_id_of(evs))["artifacts"]:
        assert (d / "artifacts" / a["name"]).is_file(), a


def test_secret_with_json_special_chars_is_redacted_in_the_result(state, tmp_path):
    value = 'pa"ss\\word-9137xyz'
    set_secret(state, "TOK", value)
    script = ("esc=$(printf %s \"$TOK\" | sed 's/[\"\\\\]/\\\\&/g')\n"
              "printf '{\"v\":\"%s\"}' \"$esc\" > /workspace/output.json\n")
    ag = make_agent(tmp_path, "quoted", script, manifest={"required_secrets": ["TOK"]})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)
    assert finished(evs)["output"] == {"v": "[REDACTED:TOK]"}  # the event is redacted
    assert result_of(state, rid)["output"] == {"v": "[REDACTED:TOK]"}
    show = json.loads(cordon(state, "runs", "show", "--json", rid).stdout)
    assert show["result"]["output"]["v"] != value


def test_env_register_and_resolution_errors(state, tmp_path):
    r = cordon(state, "env", "register", "--json", "cfg", "MODE=prod", "REGION=eu")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["version"] == 1 and first["created"] is True
    again = json.loads(cordon(state, "env", "register", "--json", "cfg", "REGION=eu",
                              "MODE=prod").stdout)
    assert again["created"] is False and again["sha256"] == first["sha256"]
    for bad in (["API_KEY=x"], ["NOEQUALS"], ["1X=y"], ["A=1", "A=2"]):
        r = cordon(state, "env", "register", "bad", *bad)
        assert r.returncode == 125, bad
    assert cordon(state, "env", "register", "Bad", "A=1").returncode == 125
    ag = make_agent(tmp_path, "noenv", "echo RAN\n", manifest={"env": "missing"})
    r = cordon(state, "run", ag)
    assert r.returncode == 125 and "missing" in r.stderr
    assert_no_run_recorded(state)


ENVY = """echo "$MODE/$REGION"
[ "$TOK" = "from-env-value" ] && echo ENV-WON
[ -n "$TOK" ] && echo tok-set
"""


def test_env_is_injected_and_a_secret_of_the_same_name_wins(state, tmp_path):
    r = cordon(state, "env", "register", "cfg", "MODE=prod", "REGION=eu", "TOK=from-env-value")
    assert r.returncode == 0, r.stderr
    set_secret(state, "TOK", SECRET)
    ag = make_agent(tmp_path, "envy", ENVY, manifest={"env": "cfg", "required_secrets": ["TOK"]})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    assert evs[0]["env"]["name"] == "cfg" and "vars" not in evs[0]["env"]
    out = (run_dir(state, run_id_of(evs)) / "stdout").read_text()
    assert out == "prod/eu\ntok-set\n"


# -------------------------------------------------------- 5. capabilities

CAPS = r"""
cat /capabilities/data/data.txt
if { echo x >> /capabilities/data/data.txt; } 2>/dev/null
then echo WRITE-OK; else echo write-denied; fi
if touch /capabilities/data/new 2>/dev/null; then echo CREATE-OK; else echo create-denied; fi
ls /capabilities
"""


def make_caps(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.txt").write_text("dataset\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "t.txt").write_text("tool\n")
    return data, tools


def test_capabilities_need_registration_and_a_grant(state, tmp_path):
    data, tools = make_caps(tmp_path)
    ag = make_agent(tmp_path, "capper", CAPS, manifest={"capabilities": ["data"]})
    r = cordon(state, "run", ag)
    assert r.returncode == 125 and "data" in r.stderr  # not granted (nor registered)
    r = cordon(state, "grant", "capper", "data")
    assert r.returncode == 125 and "not registered" in r.stderr
    reg = cordon(state, "capability", "register", "--json", "data", data)
    assert reg.returncode == 0, reg.stderr
    assert json.loads(reg.stdout)["version"] == 1
    assert cordon(state, "capability", "register", "tools", tools).returncode == 0
    assert cordon(state, "capability", "register", "Bad", tools).returncode == 125
    assert cordon(state, "capability", "register", "x", tmp_path / "nope").returncode == 125
    r = cordon(state, "run", ag)
    assert r.returncode == 125
    assert "data" in r.stderr and "grant" in r.stderr
    # granted in another workspace does not count
    cordon(state, "capability", "register", "-w", "other", "data", data)
    assert cordon(state, "grant", "-w", "other", "capper", "data").returncode == 0
    assert cordon(state, "grant", "tools", "data").returncode == 0  # another agent
    r = cordon(state, "run", ag)
    assert r.returncode == 125 and "grant" in r.stderr
    assert_no_run_recorded(state)
    lst = json.loads(cordon(state, "capability", "list", "--json").stdout)
    assert sorted(c["name"] for c in lst) == ["data", "tools"]


def test_granted_capability_is_mounted_read_only(state, tmp_path):
    data, tools = make_caps(tmp_path)
    ag = make_agent(tmp_path, "capper", CAPS, manifest={"capabilities": ["data"]})
    reg = json.loads(cordon(state, "capability", "register", "--json", "data", data).stdout)
    assert cordon(state, "capability", "register", "tools", tools).returncode == 0
    assert cordon(state, "grant", "capper", "data").returncode == 0
    assert cordon(state, "grant", "capper", "tools").returncode == 0  # granted, not listed
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stdout + r.stderr
    rid = run_id_of(evs)
    out = (run_dir(state, rid) / "stdout").read_text()
    assert out == "dataset\nwrite-denied\ncreate-denied\ndata\n"
    assert (data / "data.txt").read_text() == "dataset\n"
    assert not (data / "new").exists()
    assert result_of(state, rid)["resolved"]["capabilities"] == [
        {"name": "data", "version": 1, "sha256": reg["sha256"]}]
    created = {k: v for k, v in evs[0].items() if k != "run_dir"}
    assert str(tmp_path) not in json.dumps(created)  # host paths are not the agent's business


# ------------------------------------------------------------ 6. artifacts

ARTIFACT_ATTACKS = r"""
cd /workspace/out
ln -s /etc/passwd passwd.txt
ln -s "$CANARY" canary.txt
ln -s /workspace/input.json in.json
ln -s / root.txt
echo hi > real.txt; ln real.txt hard.txt
mkfifo fifo.txt
echo x > evil.sh
echo x > noext
mkdir sub.txt; echo deep > sub.txt/deep.txt
printf 'a\nb' > "$(printf 'ctl\001\033[31m.txt')"
printf 'nl' > "$(printf 'new\nline.txt')"
echo a > ..txt
echo a > ...
echo a > .hidden.txt
echo a > 'A.md'; echo b > 'a.md'
echo ok > good.json
echo y > UPPER.TXT
"""


def test_artifact_attacks_are_skipped_and_contained(state, tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("host canary\n")
    ag = make_agent(tmp_path, "arts",
                    ARTIFACT_ATTACKS.replace("$CANARY", str(canary)))
    before = set(os.listdir(tmp_path))
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    rid = run_id_of(evs)
    assert finished(evs)["status"] == "succeeded"
    skipped = {e["name"]: e["reason"] for e in evs if e["type"] == "artifact.skipped"}
    saved = {e["name"]: e for e in evs if e["type"] == "artifact.saved"}
    for n in ["passwd.txt", "canary.txt", "in.json", "root.txt"]:
        assert skipped.get(n) == "symlink", (n, skipped)
    assert skipped["hard.txt"] == "hard link" and skipped["real.txt"] == "hard link"
    assert skipped["fifo.txt"] == "not a regular file"
    assert skipped["sub.txt"] == "directory"
    assert "not allowed" in skipped["evil.sh"]
    assert "extension" in skipped["noext"]
    assert "..." in skipped and "..txt" in skipped
    assert set(saved) == {"A.md", "a-1.md", "ctl_31m.txt", "new_line.txt", "hidden.txt",
                          "good.json", "UPPER.TXT"}, saved
    assert saved["ctl_31m.txt"]["original"] == "ctl??[31m.txt"

    d = run_dir(state, rid) / "artifacts"
    assert sorted(os.listdir(d)) == sorted(saved)
    for n, e in saved.items():
        p = d / n
        assert p.is_file() and not p.is_symlink()
        st = p.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_nlink == 1
        assert sha256(p.read_bytes()) == e["sha256"]
        assert b"root:x:0:0" not in p.read_bytes() and b"host canary" not in p.read_bytes()
    assert canary.read_text() == "host canary\n"
    assert set(os.listdir(tmp_path)) == before
    # agent-chosen names carry no control bytes into the record
    raw = (run_dir(state, rid) / "events.ndjson").read_bytes()
    assert b"\x1b" not in raw and b"\\u001b" not in raw.lower()
    assert b"\x1b" not in (run_dir(state, rid) / "result.json").read_bytes()


def test_artifact_limits_from_the_manifest(state, tmp_path):
    script = r"""
cd /workspace/out
head -c 900 /dev/zero > a1.md
head -c 900 /dev/zero | tr '\0' b > a2.md
head -c 900 /dev/zero | tr '\0' c > a3.md
head -c 1500 /dev/zero > big.md
echo x > run.sh
echo x > note.txt
echo 1 > z1.md; echo 2 > z2.md; echo 3 > z3.md
"""
    ag = make_agent(tmp_path, "limits", script, manifest={"outputs": {
        "max_files": 3, "max_file_bytes": "1k", "max_total_bytes": "2k",
        "extensions": ["md", "sh"]}})
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    skipped = {e["name"]: e["reason"] for e in evs if e["type"] == "artifact.skipped"}
    saved = [e["name"] for e in evs if e["type"] == "artifact.saved"]
    assert saved == ["a1.md", "a2.md", "z1.md"], (saved, skipped)
    assert skipped["a3.md"].startswith("total over 2 KiB")
    assert skipped["big.md"] == "larger than 1 KiB"
    assert "not allowed" in skipped["note.txt"]
    assert "not allowed" in skipped["run.sh"]  # the manifest cannot add "sh"
    assert skipped["z2.md"] == "more than 3 files" and skipped["z3.md"] == "more than 3 files"
    total = sum(e["size"] for e in evs if e["type"] == "artifact.saved")
    assert total <= 2048


def test_artifact_flood_is_bounded(state, tmp_path):
    script = r"""
cd /workspace/out
i=0; while [ $i -lt 1010 ]; do : > f$i.txt; i=$((i+1)); done
"""
    ag = make_agent(tmp_path, "flood", script)
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    saved = [e for e in evs if e["type"] == "artifact.saved"]
    skipped = [e for e in evs if e["type"] == "artifact.skipped"]
    assert len(saved) == 20  # the default max_files
    assert any("1000 entries" in e["reason"] for e in skipped)
    assert len(os.listdir(run_dir(state, run_id_of(evs)) / "artifacts")) == 20


def test_out_replaced_by_a_symlink_collects_nothing(state, tmp_path):
    script = ("rmdir /workspace/out; mkdir /workspace/real; echo x > /workspace/real/a.txt\n"
              "ln -s /workspace/real /workspace/out\n")
    ag = make_agent(tmp_path, "outlink", script)
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    assert not [e for e in evs if e["type"] == "artifact.saved"]
    assert os.listdir(run_dir(state, run_id_of(evs)) / "artifacts") == []


# --------------------------------------------------------------- 7. output

OUTPUT_CASES = {
    "invalid JSON": ("printf '{\"a\": ' > /workspace/output.json", "not valid JSON"),
    "duplicate keys": ("printf '{\"a\":1,\"a\":2}' > /workspace/output.json", "not valid JSON"),
    "symlink": ("echo '{}' > /workspace/x.json; ln -s /workspace/x.json /workspace/output.json",
                "output.json"),
    "symlink to host file": ("ln -s /etc/passwd /workspace/output.json", "output.json"),
    "fifo": ("mkfifo /workspace/output.json", "not a regular file"),
    "fifo with a writer": ("mkfifo /workspace/output.json; "
                           "(echo '{}' > /workspace/output.json &) ; sleep 0.1",
                           "not a regular file"),
    "directory": ("mkdir /workspace/output.json", "not a regular file"),
    "too large": ("head -c 2000000 /dev/zero | tr '\\0' ' ' > /workspace/output.json; "
                  "echo '{}' >> /workspace/output.json", "larger than"),
    "binary": ("head -c 100 /dev/urandom > /workspace/output.json", "not valid JSON"),
    "deeply nested": ("head -c 100000 /dev/zero | tr '\\0' '[' > /workspace/output.json",
                      "not valid JSON"),
}


@pytest.mark.parametrize("kind", list(OUTPUT_CASES))
def test_bad_output_is_null_with_an_event(state, tmp_path, kind):
    script, why = OUTPUT_CASES[kind]
    ag = make_agent(tmp_path, "out", script + "\n")
    t0 = time.monotonic()
    r, evs = crun(state, ag, timeout=30)
    assert time.monotonic() - t0 < 20
    assert r.returncode == 0, (kind, r.stderr)
    fin = finished(evs)
    assert fin["status"] == "succeeded" and fin["output"] is None
    inv = [e for e in evs if e["type"] == "output.invalid"]
    assert len(inv) == 1 and why in inv[0]["problem"], (kind, inv)
    assert result_of(state, run_id_of(evs))["output"] is None


def test_no_output_is_null_without_an_event(state, tmp_path):
    r, evs = crun(state, make_agent(tmp_path, "quiet", "true\n"))
    assert r.returncode == 0
    assert finished(evs)["output"] is None
    assert not [e for e in evs if e["type"] == "output.invalid"]


def test_output_at_the_limit_is_kept(state, tmp_path):
    # 1 MiB exactly is accepted
    script = ("printf '{\"a\":\"' > /workspace/output.json; "
              "head -c 1048568 /dev/zero | tr '\\0' x >> /workspace/output.json; "
              "printf '\"}' >> /workspace/output.json\n")
    r, evs = crun(state, make_agent(tmp_path, "big", script))
    assert r.returncode == 0, r.stderr
    out = result_of(state, run_id_of(evs))["output"]
    assert out is not None and len(out["a"]) == 1048568
    # ...and recorded: the record holds that result (review finding: it
    # was over the record's bound, and the record stayed "running").
    shown = json.loads(cordon(state, "runs", "show", "--json", run_id_of(evs)).stdout)
    assert shown["status"] == "succeeded", shown["status"]
    assert len(shown["result"]["output"]["a"]) == 1048568


# --------------------------------------------------------------- 8. limits

def test_timeout(state, tmp_path):
    ag = make_agent(tmp_path, "slow", "echo started > $CORDON_STEPS\nsleep 30 & sleep 30\n",
                    manifest={"limits": {"timeout_seconds": 1}})
    t0 = time.monotonic()
    r, evs = crun(state, ag)
    assert r.returncode == 124, r.stderr
    assert time.monotonic() - t0 < 10
    fin = finished(evs)
    assert fin["status"] == "timeout" and fin["exit_code"] == 124
    res = result_of(state, run_id_of(evs))
    assert res["timed_out"] is True and res["status"] == "timeout"
    assert runs_list(state)[0]["status"] == "timeout"


def test_out_of_memory(state, tmp_path):
    ag = make_agent(tmp_path, "hog", "x=$(head -c 200000000 /dev/zero | tr '\\0' a)\n"
                                     "echo survived ${#x}\n",
                    manifest={"limits": {"mem": "16m", "timeout_seconds": 20}})
    r, evs = crun(state, ag)
    assert r.returncode == 137, r.stderr
    fin = finished(evs)
    assert fin["status"] == "oom" and fin["exit_code"] == 137
    res = result_of(state, run_id_of(evs))
    assert res["oom_killed"] is True
    assert "survived" not in (run_dir(state, run_id_of(evs)) / "stdout").read_text()


@pytest.mark.parametrize("entry,code,status", [
    (["/bin/sh", "-c", "exit 3"], 3, "failed"),
    (["/bin/sh", "-c", "exit 255"], 255, "failed"),
    (["/no/such/binary"], 127, "failed"),
    (["no-such-command-anywhere"], 127, "failed"),
    (["/etc/hostname"], 126, "failed"),
    (["/bin/sh", "-c", "kill -TERM $$"], 143, "killed"),
])
def test_exit_codes(state, tmp_path, entry, code, status):
    ag = make_agent(tmp_path, "exits", manifest={"entrypoint": entry})
    r, evs = crun(state, ag)
    assert r.returncode == code, r.stderr
    fin = finished(evs)
    assert fin["status"] == status and fin["exit_code"] == code
    lst = runs_list(state)
    assert lst[0]["status"] == status and lst[0]["exit_code"] == code


def test_pids_limit_contains_a_fork_bomb(state, tmp_path):
    ag = make_agent(tmp_path, "bomb",
                    "i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done 2>/dev/null\n"
                    "echo spawned $(jobs -p | wc -l)\n",
                    manifest={"limits": {"pids": 16, "timeout_seconds": 2}})
    r, evs = crun(state, ag, timeout=30)
    assert r.returncode != 125, r.stderr
    assert finished(evs)["status"] in ("succeeded", "failed", "timeout")
    # the autouse fixture checks that nothing survived the run


# --------------------------------------------------- 9. concurrent runs

ISOLATION = r"""
echo "$CORDON_RUN_ID" > "/workspace/mark-$CORDON_RUN_ID"
echo "$CORDON_RUN_ID" > "/tmp/mark-$CORDON_RUN_ID"
echo ready > $CORDON_STEPS
sleep 1
ls -A /workspace /tmp
ls /proc | grep -c '^[0-9]'
"""


def test_concurrent_runs_are_isolated(state, tmp_path):
    ag = make_agent(tmp_path, "iso", ISOLATION)
    procs = [subprocess.Popen([CORDON, "run", "--state", str(state), "--json", str(ag)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path / "cwd", env=clean_env())
             for _ in range(4)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        evs = events_of(out)
        assert finished(evs)["status"] == "succeeded"
        ids.append(run_id_of(evs))
    assert len(set(ids)) == 4
    for rid in ids:
        out = (run_dir(state, rid) / "stdout").read_text()
        marks = {w for w in out.split() if w.startswith("mark-")}
        assert marks == {f"mark-{rid}"}, (rid, out)
        assert out.count(f"mark-{rid}") == 2  # once in /workspace, once in /tmp
        for other in ids:
            if other != rid:
                assert other not in out
    lst = runs_list(state)
    assert sorted(x["id"] for x in lst) == sorted(ids)
    assert {x["status"] for x in lst} == {"succeeded"}
    assert sorted(os.listdir(state / "runs")) == sorted(ids)


# --------------------------------------------------- 10. crash recovery

def test_sigkill_of_cordon_run_is_recovered(state, tmp_path):
    ag = make_agent(tmp_path, "victim",
                    "echo started > $CORDON_STEPS\nsleep 600 & sleep 600\n")
    p = subprocess.Popen([CORDON, "run", "--state", str(state), "--json", str(ag)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path / "cwd", env=clean_env())
    try:
        def started():
            return any(b'"step"' in f.read_bytes()
                       for f in state.glob("runs/*/events.ndjson"))
        assert wait_until(started, timeout=15)
        assert wait_until(lambda: len(sandbox_processes()) >= 3, timeout=10)
        lst = runs_list(state)
        assert len(lst) == 1 and lst[0]["status"] == "running"  # alive: not recovered
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
    assert wait_until(lambda: not sandbox_processes(), timeout=10), sandbox_processes()
    assert wait_until(lambda: not cgroup_leftovers(), timeout=10), cgroup_leftovers()
    lst = runs_list(state)
    assert len(lst) == 1
    assert lst[0]["status"] == "error"
    assert "supervisor died" in lst[0]["error"]
    rid = lst[0]["id"]
    show = json.loads(cordon(state, "runs", "show", "--json", rid).stdout)
    assert show["status"] == "error" and "duration_ms" in show
    # logs --follow of a run whose supervisor died still ends
    t0 = time.monotonic()
    r = cordon(state, "logs", "--follow", "--json", rid, timeout=20)
    assert r.returncode == 0 and time.monotonic() - t0 < 10
    # and the store is still usable for new runs
    r, evs = crun(state, make_agent(tmp_path, "after", "true\n"))
    assert r.returncode == 0, r.stderr


def test_sigterm_of_cordon_run_ends_the_run_as_killed(state, tmp_path):
    ag = make_agent(tmp_path, "term", "echo started > $CORDON_STEPS\nsleep 600 & sleep 600\n")
    p = subprocess.Popen([CORDON, "run", "--state", str(state), "-q", str(ag)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path / "cwd", env=clean_env())
    assert wait_until(lambda: any(b'"step"' in f.read_bytes()
                                  for f in state.glob("runs/*/events.ndjson")), timeout=15)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=20)
    assert p.returncode == 143
    lst = runs_list(state)
    assert lst[0]["status"] == "killed" and lst[0]["exit_code"] == 143


def test_closed_stdout_does_not_kill_the_run(state, tmp_path):
    ag = make_agent(tmp_path, "piped", "for i in 1 2 3; do echo s$i > $CORDON_STEPS; "
                                       "sleep 0.1; done\necho ok > /workspace/out/r.txt\n")
    p = subprocess.Popen([CORDON, "run", "--state", str(state), "--json", str(ag)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path / "cwd", env=clean_env())
    first = p.stdout.readline()
    assert b"run.created" in first
    p.stdout.close()  # the viewer goes away (`| head -1`)
    p.stderr.read()
    p.wait(timeout=30)
    p.stderr.close()
    assert wait_until(lambda: not sandbox_processes(), timeout=10)
    lst = runs_list(state)
    assert len(lst) == 1
    assert lst[0]["status"] == "succeeded", lst[0]
    assert (run_dir(state, lst[0]["id"]) / "artifacts" / "r.txt").exists()


def test_logs_follow_streams_a_live_run(state, tmp_path):
    ag = make_agent(tmp_path, "live", "for i in 1 2 3; do echo s$i > $CORDON_STEPS; "
                                      "sleep 0.15; done\n")
    p = subprocess.Popen([CORDON, "run", "--state", str(state), "-q", str(ag)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path / "cwd", env=clean_env())
    try:
        assert wait_until(lambda: runs_list(state) != [], timeout=15)
        rid = runs_list(state)[0]["id"]
        f = cordon(state, "logs", "--follow", "--json", rid, timeout=20)
    finally:
        p.communicate(timeout=30)
    assert p.returncode == 0
    evs = events_of(f.stdout)
    assert evs == events_of((run_dir(state, rid) / "events.ndjson").read_text())
    assert evs[-1]["type"] == "run.finished"
    assert [e["step"]["text"] for e in evs if e["type"] == "step"] == ["s1", "s2", "s3"]


def test_output_flood_is_drained_and_capped(state, tmp_path):
    set_secret(state, "TOK", SECRET)
    script = ("head -c 50000000 /dev/zero | tr '\\0' z\n"
              "head -c 5000000 /dev/urandom >&2\n"
              "seq 1 10005 > $CORDON_STEPS\n"
              "echo done > /workspace/out/done.txt\n")
    ag = make_agent(tmp_path, "flood", script, manifest={"required_secrets": ["TOK"]})
    t0 = time.monotonic()
    r, evs = crun(state, ag, timeout=60)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 15
    rid = run_id_of(evs)
    res = result_of(state, rid)
    assert res["stdout"] == {"file": "stdout", "bytes": 50000000, "kept": 10240,
                             "truncated": True}
    assert res["stderr"]["bytes"] == 5000000 and res["stderr"]["kept"] == 10240
    assert (run_dir(state, rid) / "stdout").stat().st_size == 10240
    steps = json.loads((run_dir(state, rid) / "steps.json").read_text())
    assert len(steps) == 10000 and steps[-1] == {"text": "10000"}
    notes = [e.get("step", e)["note"] for e in evs
             if e["type"] == "step" and "note" in e.get("step", e)]
    assert len(notes) == 1 and "limit" in notes[0]
    assert [a["name"] for a in res["artifacts"]] == ["done.txt"]


def test_every_step_event_has_a_step_object(state, tmp_path):
    ag = make_agent(tmp_path, "many", "seq 1 10001 > $CORDON_STEPS\n")
    r, evs = crun(state, ag)
    assert r.returncode == 0, r.stderr
    steps = [e for e in evs if e["type"] == "step"]
    assert len(steps) == 10001
    assert all(isinstance(e.get("step"), dict) for e in steps), steps[-1]


def test_agent_cannot_reach_the_state_dir(state, tmp_path):
    set_secret(state, "TOK", SECRET)  # creates master.key
    assert (state / "master.key").exists()
    script = (f"cat {state}/master.key && echo READ-KEY\n"
              f"ls {state} && echo LISTED\n"
              "ls /var/lib/cordon && echo DEFAULT-STATE\n"
              "cat /proc/1/environ && echo ENVIRON\n"
              "true\n")
    r, evs = crun(state, make_agent(tmp_path, "peek", script),
                  env={"CORDON_MASTER_KEY_UNUSED": "x"})
    assert r.returncode == 0, r.stderr
    out = (run_dir(state, run_id_of(evs)) / "stdout").read_text()
    for word in ["READ-KEY", "LISTED", "DEFAULT-STATE", "ENVIRON"]:
        assert word not in out, out


def test_agent_does_not_see_the_host_command_line(state, tmp_path):
    (tmp_path / "in.json").write_text("{}")
    ag = make_agent(tmp_path, "cmdline", "tr '\\0' ' ' < /proc/1/cmdline\n")
    r, evs = crun(state, ag, "-i", tmp_path / "in.json")
    assert r.returncode == 0, r.stderr
    out = (run_dir(state, run_id_of(evs)) / "stdout").read_text()
    assert str(tmp_path) not in out, out


# ----------------------------------------------------------------- 11. input

@pytest.mark.parametrize("text,msg", [
    ('{"a":', "not valid JSON"),
    ("[1, 2]", "object"),
    ("42", "JSON"),
    ('"str"', "JSON"),
    ("null", "JSON"),
    ("", "JSON"),
    ('{"a":1,"a":2}', "duplicate"),
    ('{"a":"\\u0000"}', "JSON"),
    ("\xff\xfe{}", "JSON"),
])
def test_bad_input_is_refused(state, tmp_path, text, msg):
    ag = make_agent(tmp_path, "inp", "echo RAN\n")
    f = tmp_path / "input.json"
    f.write_bytes(text.encode("latin-1"))
    r = cordon(state, "run", "-i", f, ag)
    assert r.returncode == 125
    assert msg in r.stderr and "input" in r.stderr, r.stderr
    assert_no_run_recorded(state)


@pytest.mark.parametrize("size", [(1 << 20) + 16, 3 << 20])
def test_input_over_one_mib_is_refused(state, tmp_path, size):
    ag = make_agent(tmp_path, "inp", "echo RAN\n")
    f = tmp_path / "input.json"
    f.write_text('{"a":"' + "x" * (size - 8) + '"}')
    r = cordon(state, "run", "-i", f, ag)
    assert r.returncode == 125
    assert "1048576" in r.stderr, r.stderr
    r = cordon(state, "run", "-i", "-", ag, stdin=f.read_text())
    assert r.returncode == 125 and "1048576" in r.stderr
    assert_no_run_recorded(state)


def test_missing_input_file(state, tmp_path):
    r = cordon(state, "run", "-i", tmp_path / "nope.json", make_agent(tmp_path, "inp", ""))
    assert r.returncode == 125 and "nope.json" in r.stderr
    assert_no_run_recorded(state)


# ------------------------------------------------------------------ 12. help

@pytest.mark.parametrize("cmd", ["run", "agent", "capability", "env", "grant", "secret",
                                 "runs", "logs"])
def test_help(state, cmd):
    r = subprocess.run([CORDON, cmd, "--help"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: cordon {cmd}"), r.stdout
    assert "--state" in r.stdout and "--workspace" in r.stdout
    r = subprocess.run([CORDON, cmd, "--no-such-option"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 125 and "Usage" in r.stderr


def test_usage_errors(state, tmp_path):
    for args, msg in [(["run"], "which agent"),
                      (["run", "a", "b"], "one agent"),
                      (["runs", "list", "--status", "weird"], "unknown status"),
                      (["runs", "list", "--limit", "0"], "--limit"),
                      (["runs", "show", "run_nope"], "no run"),
                      (["logs", "run_nope"], "no run"),
                      (["logs", "../../etc/passwd"], "run")]:
        r = cordon(state, *args)
        assert r.returncode == 125, args
        assert msg in r.stderr, (args, r.stderr)


# ----------------------------------------------------------- state directory

def test_unsafe_state_directory_is_refused(tmp_path):
    ag = make_agent(tmp_path, "st", "true\n")
    (tmp_path / "cwd").mkdir()
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o777)
    r = cordon(loose, "run", ag)
    assert r.returncode == 125 and "writable" in r.stderr
    link = tmp_path / "link"
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link.symlink_to(real)
    r = cordon(link, "run", ag)
    assert r.returncode == 125 and "symlink" in r.stderr.lower()
    assert not (real / "cordon.db").exists()
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    r = cordon(theirs, "runs", "list")
    assert r.returncode == 125 and "owned by" in r.stderr
    r = subprocess.run([CORDON, "runs", "list"], capture_output=True, text=True,
                       env=clean_env({"CORDON_STATE": "relative/state"}), cwd=tmp_path)
    assert r.returncode == 125 and "absolute" in r.stderr


def test_state_and_workspace_from_the_environment(state, tmp_path):
    ag = make_agent(tmp_path, "envstate", "true\n")
    env = clean_env({"CORDON_STATE": str(state), "CORDON_WORKSPACE": "envws"})
    r = subprocess.run([CORDON, "run", "-q", str(ag)], capture_output=True, text=True, env=env,
                       cwd=tmp_path / "cwd", timeout=60)
    assert r.returncode == 0, r.stderr
    assert runs_list(state) == []
    lst = runs_list(state, "-w", "envws")
    assert len(lst) == 1 and lst[0]["workspace"] == "envws"


def test_relative_state_directory(state, tmp_path):
    ag = make_agent(tmp_path, "rel", "echo hi > /workspace/out/a.txt\n")
    r, evs = crun(Path("state"), ag, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert finished(evs)["status"] == "succeeded"
    assert (run_dir(state, run_id_of(evs)) / "result.json").exists()
    assert (run_dir(state, run_id_of(evs)) / "artifacts" / "a.txt").exists()


def test_register_rereads_the_snapshot_whole(state, tmp_path):
    """Registering reads agent.json twice: from the directory, then from
    the snapshot it stores. A file swapped in between for one over the
    64 KiB bound (here the same manifest padded with spaces, which a
    64 KiB prefix still parses) was stored anyway: the second read was an
    unchecked, bounded fread. Now it is refused."""
    import threading
    small = json.dumps({"name": "flip", "version": "1", "entrypoint": ["/bin/true"]})
    big = small + " " * (70 * 1024)
    src = tmp_path / "flip"
    src.mkdir()
    (src / "agent.json").write_text(small)
    first = cordon(state, "agent", "register", "--json", src)
    assert first.returncode == 0, first.stderr
    small_hash = json.loads(first.stdout)["sha256"]
    stop = threading.Event()
    tmp_small, tmp_big = tmp_path / "s.json", tmp_path / "b.json"

    def flip():
        while not stop.is_set():
            tmp_small.write_text(small)
            os.replace(tmp_small, src / "agent.json")
            tmp_big.write_text(big)
            os.replace(tmp_big, src / "agent.json")
    t = threading.Thread(target=flip, daemon=True)
    t.start()
    stored, refused = set(), 0
    try:
        for _ in range(80):
            r = cordon(state, "agent", "register", "--json", src)
            if r.returncode == 0:
                stored.add(json.loads(r.stdout)["sha256"])
            else:
                # too big, or caught changing while it was read
                assert "bytes" in r.stderr or "changed while being read" in r.stderr, \
                    r.stderr
                refused += 1
    finally:
        stop.set()
        t.join()
    # Whatever the timing, only the small manifest's tree is ever stored.
    assert stored <= {small_hash}, stored
    assert refused > 0



def test_an_output_too_large_for_the_record_makes_an_error_run(state, tmp_path):
    """An output.json within its bound that redaction makes larger than a
    record keeps (its secret's value, many times, each replaced by a longer
    marker): the run is an error that says why, with the output left out
    of result.json and the record alike, which still agree (review
    finding: the record was never written while cordon run printed
    success)."""
    name = "A_VERY_LONG_SECRET_NAME_THAT_GROWS_EACH_REDACTION"
    r = cordon(state, "secret", "set", name, stdin="v4lue-0123456789")
    assert r.returncode == 0, r.stderr
    script = ("mkdir -p /workspace/out; echo r > /workspace/out/r.txt\n"
              "printf '{\"x\":\"' > /workspace/output.json\n"
              f"yes \"${name}\" | tr -d '\\n' | head -c 1048000 >> /workspace/output.json\n"
              "printf '\"}' >> /workspace/output.json\n")
    ag = make_agent(tmp_path, "big", script, manifest={"required_secrets": [name]})
    r, evs = crun(state, str(ag))
    assert r.returncode != 0
    fin = finished(evs)
    assert fin["status"] == "error" and "bytes a record keeps" in fin["error"], fin
    rid = run_id_of(evs)
    res = result_of(state, rid)
    assert res["status"] == "error" and res["output"] is None, res["status"]
    assert res["artifacts"], res
    shown = json.loads(cordon(state, "runs", "show", "--json", rid).stdout)
    assert shown["status"] == "error" and "output.json was left out" in shown["error"], shown
    ev = cordon(state, "evidence", "export", rid, "-o", str(tmp_path / "p.tar.gz"))
    assert ev.returncode == 0, ev.stderr
