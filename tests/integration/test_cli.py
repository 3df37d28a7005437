# SPDX-License-Identifier: Apache-2.0
"""A user's first hour with the CLI, through the real binary: options after
the agent, the agent's output live in the progress view, a failed run that
says why, the run's files fetched back, cancel, and CORDON_URL covering run
itself."""
import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest

from conftest import CORDON, run, wait_until
from test_run import SECRET, clean_env, cordon, events_of, make_agent, runs_list, set_secret, state  # noqa: F401
from test_serve import Server, agent as srv_agent


def rid_of(state_dir):
    runs = runs_list(state_dir)
    assert runs, "no run recorded"
    return runs[0]["id"]


# ------------------------------------------------------------------ options

def test_run_takes_options_after_the_agent(state, tmp_path):
    ag = make_agent(tmp_path, "late", 'cat /workspace/input.json; echo\n')
    inp = tmp_path / "in.json"
    inp.write_text('{"k": "v"}')
    r = cordon(state, "run", ag, "--json", "-i", inp)
    assert r.returncode == 0, r.stderr
    evs = events_of(r.stdout)
    assert evs[-1]["type"] == "run.finished" and evs[-1]["status"] == "succeeded"
    r = cordon(state, "run", ag, "-q")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)
    # "--" ends the options; the agent still comes alone.
    r = cordon(state, "run", "--json", "--", ag)
    assert r.returncode == 0, r.stderr


def test_run_refuses_arguments_for_the_agent(state, tmp_path):
    ag = make_agent(tmp_path, "noargs", "true\n")
    for extra in (["extra"], ["--", "extra"]):
        r = cordon(state, "run", ag, *extra)
        assert r.returncode == 125, r.stderr
        assert "takes no arguments" in r.stderr and "'extra'" in r.stderr and "-i" in r.stderr
    assert runs_list(state) == []


# ------------------------------------------------------------------ output

def test_progress_view_shows_the_output_live(state, tmp_path):
    ag = make_agent(tmp_path, "live", 'echo early-line; echo early-err >&2; sleep 3; echo late-line\n')
    p = subprocess.Popen([CORDON, "run", "--state", str(state), str(ag)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=clean_env(), cwd=state.parent / "cwd")
    try:
        seen, deadline = b"", time.time() + 20
        while b"early-line" not in seen and time.time() < deadline:
            if select.select([p.stdout], [], [], 0.5)[0]:
                seen += os.read(p.stdout.fileno(), 4096)
        assert b"early-line" in seen, seen
        assert p.poll() is None, "the line came only at the end"
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    out = seen + out
    assert p.returncode == 0
    # A pipe gets the agent's bytes as they are: stdout to stdout, stderr to stderr.
    assert b"early-line\n" in out and b"late-line\n" in out
    assert b"early-err\n" in err and b"early-err" not in out
    assert out.index(b"early-line") < out.index(b"late-line") < out.index("✔".encode())


def test_json_view_is_events_only(state, tmp_path):
    ag = make_agent(tmp_path, "chatty", 'echo not-json; echo also >&2\n')
    r = cordon(state, "run", "--json", ag)
    assert r.returncode == 0
    for line in r.stdout.splitlines():
        json.loads(line)
    assert "not-json" not in r.stdout and "also" not in r.stderr


def test_failed_run_ends_with_the_tail_of_its_stderr(state, tmp_path):
    set_secret(state, "TAIL_SECRET", SECRET)
    script = ('i=1; while [ $i -le 30 ]; do echo "err-line-$i" >&2; i=$((i+1)); done\n'
              'echo "token=$TAIL_SECRET" >&2\nexit 3\n')
    ag = make_agent(tmp_path, "tail", script, manifest={"required_secrets": ["TAIL_SECRET"]})
    r = cordon(state, "run", ag)
    assert r.returncode == 3, r.stderr
    assert SECRET not in r.stdout and SECRET not in r.stderr
    head, _, tail = r.stdout.partition("last lines of stderr:")
    assert "✘ failed" in head and tail, r.stdout
    lines = [l.split("│ ", 1)[1] for l in tail.strip().splitlines()]
    assert len(lines) == 10, lines
    assert lines[0] == "err-line-22" and lines[-2] == "err-line-30"
    assert lines[-1].startswith("token=[REDACTED")
    # -q says nothing; a run that succeeds shows no tail.
    r = cordon(state, "run", "-q", ag)
    assert r.returncode == 3 and r.stdout == ""
    ok = make_agent(tmp_path, "fine", "echo fine >&2\n")
    r = cordon(state, "run", ok)
    assert r.returncode == 0 and "last lines of stderr" not in r.stdout


def test_terminal_output_is_made_safe(state, tmp_path):
    """On a terminal the agent's output cannot move the cursor, retitle the
    window, or draw a line that looks like cordon's own."""
    script = (r"printf '\033]0;pwned\007\033[2J\033[1A\r\342\234\224 succeeded\n'" + "\n"
              r"printf 'tab\there\302\233[31mc1\n' >&2" + "\nexit 1\n")
    ag = make_agent(tmp_path, "tty", script)
    master, slave = pty.openpty()
    p = subprocess.Popen([CORDON, "run", "--state", str(state), str(ag)], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, env=clean_env(), cwd=state.parent / "cwd")
    os.close(slave)
    data = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    p.wait(timeout=30)
    os.close(master)
    text = data.decode("utf-8", "replace")
    assert p.returncode == 1
    assert "\x1b" not in text and "\x07" not in text and "\u009b" not in text, repr(text)
    assert "│ ?]0;pwned??[2J?[1A?✔ succeeded" in text, repr(text)
    assert "│ tab here??[31mc1" in text, repr(text)


# ------------------------------------------------------------------ logs

def test_logs_says_why_a_run_ended_in_error(state, tmp_path):
    ag = make_agent(tmp_path, "doomed", "sleep 60\n")
    p = subprocess.Popen([CORDON, "run", "--state", str(state), "-q", str(ag)],
                         env=clean_env(), cwd=state.parent / "cwd")
    try:
        assert wait_until(lambda: runs_list(state) and runs_list(state)[0]["status"] == "running",
                          timeout=20)
        p.send_signal(signal.SIGKILL)  # the supervisor dies: nobody writes run.finished
        p.wait(timeout=10)
    finally:
        p.kill()
    rid = rid_of(state)
    for args in ((), ("--json",)):
        r = cordon(state, "logs", *args, rid)
        assert r.returncode == 0, r.stderr
        assert f"run {rid} ended as error: the supervisor died" in r.stderr, r.stderr


# ------------------------------------------------------- output, artifacts, cancel

def test_runs_output_and_artifact(state, tmp_path):
    ag = make_agent(tmp_path, "files", 'echo out-text; echo err-text >&2\n'
                    'echo report-body > /workspace/out/report.txt\n')
    assert cordon(state, "run", "-q", ag).returncode == 0
    rid = rid_of(state)
    r = cordon(state, "runs", "output", rid)
    assert r.returncode == 0 and r.stdout == "out-text\n", r
    r = cordon(state, "runs", "output", rid, "stderr")
    assert r.returncode == 0 and r.stdout == "err-text\n"
    r = cordon(state, "runs", "artifact", rid, "report.txt")
    assert r.returncode == 0 and r.stdout == "report-body\n"
    dest = tmp_path / "report.txt"
    r = cordon(state, "runs", "artifact", rid, "report.txt", "-o", dest)
    assert r.returncode == 0 and dest.read_text() == "report-body\n"
    r = cordon(state, "runs", "artifact", "-o", dest, rid, "report.txt")
    assert r.returncode == 125 and "--force" in r.stderr
    dest.write_text("old")
    r = cordon(state, "runs", "artifact", "--force", rid, "report.txt", "-o", dest)
    assert r.returncode == 0 and dest.read_text() == "report-body\n"
    # Only what the result lists, by a name that is one: never another file of the run.
    for name, msg in (("../result.json", "not an artifact name"), ("result.json", "no artifact"),
                      ("nope.txt", "no artifact")):
        r = cordon(state, "runs", "artifact", rid, name)
        assert r.returncode == 125 and msg in r.stderr, (name, r.stderr)
    r = cordon(state, "runs", "output", rid, "events.ndjson")
    assert r.returncode == 125 and "not stdout or stderr" in r.stderr
    r = cordon(state, "runs", "output", rid, "-w", "other")
    assert r.returncode == 125 and "no run" in r.stderr


def test_runs_cancel_locally(state, tmp_path):
    ag = make_agent(tmp_path, "long", "echo started; sleep 60\n")
    p = subprocess.Popen([CORDON, "run", "--state", str(state), "--json", str(ag)],
                         stdout=subprocess.PIPE, env=clean_env(), cwd=state.parent / "cwd")
    try:
        assert wait_until(lambda: runs_list(state) and runs_list(state)[0]["status"] == "running",
                          timeout=20)
        rid = rid_of(state)
        t0 = time.time()
        r = cordon(state, "runs", "cancel", rid)
        assert r.returncode == 0 and "cancelling" in r.stderr, r.stderr
        out, _ = p.communicate(timeout=30)
        assert time.time() - t0 < 15
    finally:
        p.kill()
    evs = events_of(out.decode())
    types = [e["type"] for e in evs]
    assert "run.cancelling" in types
    fin = evs[-1]
    assert fin["type"] == "run.finished" and fin["status"] == "cancelled"
    assert fin["error"].startswith("cancelled by user:")
    rec = runs_list(state)[0]
    assert rec["status"] == "cancelled" and p.returncode == 125
    r = cordon(state, "runs", "cancel", rid)
    assert r.returncode == 125 and "already ended (cancelled)" in r.stderr
    r = cordon(state, "runs", "list", "--status", "running")
    assert r.returncode == 0 and "no run in workspace default matches the filter" in r.stderr


# ------------------------------------------------------------------ CORDON_URL

@pytest.fixture
def api(tmp_path):
    s = Server(tmp_path)
    r = s.cli("init")
    assert r.returncode == 0, r.stderr
    s.owner = r.stdout.strip().splitlines()[-1]
    s.cli("secret", "set", "API_SECRET", input=SECRET)
    for name, script, kw in (
            ("ok", 'echo remote-out; echo art > /workspace/out/a.txt\n', {}),
            ("bad", 'echo "fail-$API_SECRET" >&2; echo last-words >&2; exit 4\n',
             {"required_secrets": ["API_SECRET"]}),
            ("slow", "echo started; sleep 60\n", {}),
            ("live", "echo early-remote; sleep 3; echo late-remote\n", {})):
        assert s.cli("agent", "register", str(srv_agent(tmp_path, name, script, **kw))).returncode == 0
    s.start()
    env = {k: v for k, v in os.environ.items() if k != "CORDON_STATE"}
    env.update(CORDON_URL=f"http://127.0.0.1:{s.port}", CORDON_API_KEY=s.owner, NO_COLOR="1",
               CORDON_STATE=str(tmp_path / "nowhere"))
    s.client = lambda *a, timeout=60: run([CORDON, *[str(x) for x in a]], env=env, timeout=timeout)
    s.client_env = env
    yield s
    s.stop(signal.SIGKILL)
    assert not (tmp_path / "nowhere").exists()


def test_run_goes_through_the_api(api, tmp_path):
    r = api.client("run", "ok")
    assert r.returncode == 0, r.stderr
    assert "queued on" in r.stderr and "✔ succeeded" in r.stdout
    # What the agent wrote comes before the run's last line.
    assert "remote-out\n" in r.stdout
    assert r.stdout.index("remote-out") < r.stdout.index("✔ succeeded")
    rid = r.stderr.split("run ", 1)[1].split()[0]
    r = api.client("run", "ok", "--json")
    assert r.returncode == 0
    assert events_of(r.stdout)[-1]["status"] == "succeeded"
    # A failed run exits with its code and ends with its stderr, redacted.
    r = api.client("run", "bad")
    assert r.returncode == 4, r.stderr
    assert "last lines of stderr" in r.stdout and "last-words" in r.stdout
    assert SECRET not in r.stdout + r.stderr
    # What only a local run has is refused by name, as is a directory.
    r = api.client("run", "--policy", "/etc/hostname", "ok")
    assert r.returncode == 125 and "--policy is for a local run" in r.stderr
    r = api.client("run", str(tmp_path / "ok"))
    assert r.returncode == 125 and "only registered agents" in r.stderr
    # The run's files, through the API.
    r = api.client("runs", "output", rid)
    assert r.returncode == 0 and r.stdout == "remote-out\n"
    r = api.client("runs", "artifact", rid, "a.txt")
    assert r.returncode == 0 and r.stdout == "art\n"
    r = api.client("runs", "artifact", rid, "nope.txt")
    assert r.returncode == 125 and "404" in r.stderr and "no artifact nope.txt" in r.stderr
    assert r.stdout == ""  # the server's error body is not taken for the artifact


def test_run_through_the_api_shows_the_output_live(api):
    p = subprocess.Popen([CORDON, "run", "live"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=api.client_env)
    try:
        seen, deadline = b"", time.time() + 20
        while b"early-remote" not in seen and time.time() < deadline:
            if select.select([p.stdout], [], [], 0.5)[0]:
                seen += os.read(p.stdout.fileno(), 4096)
        assert b"early-remote" in seen, seen
        assert p.poll() is None, "the output came only at the end"
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    out = seen + out
    assert p.returncode == 0
    assert out.index(b"early-remote") < out.index(b"late-remote") < out.index("✔".encode())


def test_cancel_through_the_api(api):
    env = api.client_env
    p = subprocess.Popen([CORDON, "run", "slow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        rid = None
        deadline = time.time() + 20
        while not rid and time.time() < deadline:
            r = api.client("runs", "list", "--json", "--status", "running")
            runs = json.loads(r.stdout)
            rid = runs[0]["id"] if runs else None
            time.sleep(0.1)
        assert rid
        r = api.client("runs", "cancel", rid)
        assert r.returncode == 0, r.stderr
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 125, (out, err)
    r = api.client("runs", "show", rid)
    assert json.loads(r.stdout)["status"] == "cancelled"
    r = api.client("runs", "cancel", rid)
    assert r.returncode == 125 and "409" in r.stderr


# ------------------------------------------------------------------ JSON and messages

RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def test_init_json_and_keys_list_in_rfc3339(state):
    import re
    r = cordon(state, "init", "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1  # compact
    j = json.loads(lines[0])
    assert j["key"].startswith("cdn_live_") and j["role"] == "owner" and j["workspace"] == "default"
    assert j["state"] == str(state) and j["id"] == j["key"][:21]
    r = cordon(state, "keys", "list", "--json")
    keys = json.loads(r.stdout)
    assert len(r.stdout.splitlines()) == 1
    assert re.match(RFC3339, keys[0]["created"]) and keys[0]["last_used"] is None
    # init has no API: with CORDON_URL set it says so and touches nothing.
    other = state.parent / "other-state"
    r = run([CORDON, "init", "--state", str(other)],
            env=clean_env({"CORDON_URL": "http://127.0.0.1:9", "CORDON_API_KEY": "x"}))
    assert r.returncode == 125 and "init has no API" in r.stderr
    assert not other.exists()


def test_secret_messages(state):
    r = cordon(state, "secret", "rm", "NOPE")
    assert r.returncode == 125
    assert r.stderr.strip() == "cordon: secret NOPE is not set in workspace default"
    r = cordon(state, "secret", "set", "NAME", "hunter2")
    assert r.returncode == 125 and "standard input" in r.stderr and "hunter2" not in r.stderr
    r = cordon(state, "secret", "list")
    assert "NAME" not in r.stdout


def test_evidence_through_the_api(api, tmp_path):
    r = api.client("run", "-q", "ok")
    assert r.returncode == 0, r.stderr
    rid = json.loads(api.client("runs", "list", "--json").stdout)[0]["id"]
    pack = tmp_path / "pack.tar.gz"
    r = api.client("evidence", "export", rid, "-o", pack)
    assert r.returncode == 0, r.stderr
    assert "signed by the server's deployment key" in r.stdout and pack.stat().st_size > 0
    r = api.client("evidence", "export", rid, "-o", pack)
    assert r.returncode == 125 and "--force" in r.stderr
    # The server's public key comes from the server's machine.
    pk = json.loads(api.cli("evidence", "key", "--json").stdout)["public_key"]
    r = api.client("evidence", "verify", "--key", pk, pack)
    assert r.returncode == 0, r.stdout + r.stderr
    r = api.client("evidence", "verify", pack)
    assert r.returncode == 125 and "pass --key" in r.stderr
    r = api.client("evidence", "key")
    assert r.returncode == 125 and "no API endpoint" in r.stderr
    r = api.client("evidence", "export", "run_nope", "-o", tmp_path / "x.tar.gz")
    assert r.returncode == 125 and "404" in r.stderr and not (tmp_path / "x.tar.gz").exists()


def test_env_and_grant_help_say_what_they_do():
    r = run([CORDON, "env", "--help"])
    assert r.returncode == 0
    assert "environment" in r.stdout and '"env": NAME' in r.stdout and "secret set" in r.stdout
    r = run([CORDON, "grant", "--help"])
    assert r.returncode == 0
    assert "/capabilities/NAME" in r.stdout and "refused before it starts" in r.stdout


def test_a_reader_that_stops_reading_does_not_hold_the_run(state, tmp_path):
    """The view is written by a thread of its own: a `cordon run | slow`
    whose reader stops reading cannot stall the run's loop, which also
    enforces its timeout. The run ends on time; what its reader missed is
    said at the end, and is in the record."""
    ag = make_agent(tmp_path, "chatter", "while :; do echo 0123456789abcdef0123456789abcdef; done\n",
                    manifest={"limits": {"timeout_seconds": 2}})
    p = subprocess.Popen([CORDON, "run", "--state", str(state), str(ag)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=clean_env(), cwd=state.parent / "cwd")
    try:
        t0 = time.time()
        # Nobody reads the pipe; the run must end anyway.
        assert wait_until(lambda: runs_list(state) and runs_list(state)[0]["status"] == "timeout",
                          timeout=20), runs_list(state)
        assert time.time() - t0 < 15
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 124
    assert b"timeout" in out
