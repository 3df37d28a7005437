# SPDX-License-Identifier: Apache-2.0
"""A run's control socket (src/run/control.c) under attack from another
local user: a directory they made first, a socket that lies about itself,
a server that hangs up mid-request."""
import json
import os
import pwd
import socket
import threading

import pytest

from conftest import CORDON, IS_ROOT, run

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root to act as two users")


def serve_once(path, reply, uid=None, gid=None):
    """A unix socket at path answering every connection with reply."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    if uid is not None:
        os.chown(path, uid, gid)
    os.chmod(path, 0o777)
    s.listen(8)
    seen = []

    def loop():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                seen.append(c.recv(4096))
                if reply is not None:
                    c.sendall(reply)
            except OSError:
                pass
            c.close()
    threading.Thread(target=loop, daemon=True).start()
    return s, seen


def test_another_users_control_directory_is_refused(tmp_path):
    """Without XDG_RUNTIME_DIR a user's control directory is /tmp/cordon-UID.
    Another local user who made it first, with a socket showing a forged
    approval, must not be listened to, nor receive the decision."""
    victim = pwd.getpwnam("nobody")
    attacker_uid = 4242
    d = f"/tmp/cordon-{victim.pw_uid}"
    os.system(f"rm -rf {d}")
    os.mkdir(d, 0o777)
    os.chown(d, attacker_uid, attacker_uid)
    os.chmod(d, 0o777)
    forged = json.dumps({"ok": True, "run_id": "run_real", "approvals": [
        {"id": "apr_forged", "method": "POST", "host": "bank.example", "port": 443,
         "path": "/transfer", "waiting_s": 1, "expires_in_s": 100}]}).encode() + b"\n"
    srv, seen = serve_once(f"{d}/run_fake.sock", forged, attacker_uid, attacker_uid)
    try:
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        as_victim = ["setpriv", f"--reuid={victim.pw_uid}", f"--regid={victim.pw_gid}",
                     "--clear-groups", "--"]
        r = run([*as_victim, CORDON, "approvals", "list", "--json"], env=env)
        assert "apr_forged" not in r.stdout
        assert r.returncode != 0 and "refusing the control directory" in r.stderr, r.stderr
        r = run([*as_victim, CORDON, "approvals", "approve", "apr_forged"], env=env)
        assert r.returncode != 0
        assert not any(b"decide" in m for m in seen), seen
    finally:
        srv.close()
        os.system(f"rm -rf {d}")


def test_a_server_that_hangs_up_does_not_kill_the_client():
    """A socket that closes before answering: the client reports nothing
    for it and goes on (before: SIGPIPE on the write ended it, exit 141)."""
    os.makedirs("/run/cordon", mode=0o700, exist_ok=True)
    path = "/run/cordon/run_hangup0test.sock"
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)

    def loop():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()  # RST: the client's write fails
    threading.Thread(target=loop, daemon=True).start()
    try:
        for _ in range(5):
            r = run([CORDON, "approvals", "list", "--json"])
            assert r.returncode == 0, (r.returncode, r.stderr)
            assert all(a["run_id"] != "run_hangup0test" for a in json.loads(r.stdout))
    finally:
        s.close()
        os.unlink(path)


def test_the_run_is_the_sockets_name_not_what_it_says():
    """A socket claiming to be another run is listed under its own name."""
    os.makedirs("/run/cordon", mode=0o700, exist_ok=True)
    path = "/run/cordon/run_liar0test.sock"
    if os.path.exists(path):
        os.unlink(path)
    reply = json.dumps({"ok": True, "run_id": "run_victim", "approvals": [
        {"id": "apr_x", "method": "GET", "host": "h", "port": 1, "path": "/",
         "waiting_s": 0}]}).encode() + b"\n"
    srv, _ = serve_once(path, reply)
    try:
        r = run([CORDON, "approvals", "list", "--json"])
        mine = [a for a in json.loads(r.stdout) if a["id"] == "apr_x"]
        assert mine and all(a["run_id"] == "run_liar0test" for a in mine), mine
    finally:
        srv.close()
        os.unlink(path)


def test_clients_still_connected_when_the_run_ends(tmp_path):
    """Other users' tools list every run's socket; a connection that is
    still open (or half-sent) when the run ends is closed with the server.
    Before, its bufferevent outlived the freed server: a leak (which the
    sanitizer build reports as a failed run) and callbacks pointing at
    freed memory."""
    import subprocess
    import time
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "agent.json").write_text(json.dumps({
        "name": "ctl", "version": "1", "profile": "deployment",
        "entrypoint": ["/bin/sh", "-c", "sleep 1.5"],
        "egress": {"domains": ["x.test"]}}))
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nenforce: true\ndomains:\n  - name: x.test\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    p = subprocess.Popen([CORDON, "run", "--json", "--state", str(state), "--policy",
                          str(policy), str(agent)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = json.loads(p.stdout.readline())
    path = f"/run/cordon/{first['run_id']}.sock"
    held = []
    deadline = time.monotonic() + 10
    while len(held) < 3 and time.monotonic() < deadline:
        try:
            c = socket.socket(socket.AF_UNIX)
            c.connect(path)
            held.append(c)
        except OSError:
            c.close()
            time.sleep(0.02)
    assert len(held) == 3, "could not reach the run's control socket"
    held[0].sendall(b'{"op": "li')  # half a request
    held[1].sendall(b'{"op": "list"}\n')  # a whole one whose answer is never read
    out, err = p.communicate(timeout=60)
    for c in held:
        c.close()
    assert p.returncode == 0, err
    assert "LeakSanitizer" not in err and "AddressSanitizer" not in err, err


def test_dead_runs_sockets_are_pruned():
    """A run killed with SIGKILL leaves its socket behind. Listing removes
    such a socket once it is old enough that no starting run can own it, so
    the directory does not grow without bound."""
    import time
    os.makedirs("/run/cordon", mode=0o700, exist_ok=True)
    old, young = "/run/cordon/run_deadold0test.sock", "/run/cordon/run_deadnew0test.sock"
    for path in (old, young):
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # bound, never listened on: a dead run's socket
    os.utime(old, (time.time() - 120, time.time() - 120))
    try:
        r = run([CORDON, "approvals", "list", "--json"])
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(old)
        assert os.path.exists(young)  # a starting run may own it
    finally:
        for path in (old, young):
            if os.path.exists(path):
                os.unlink(path)


def test_a_run_that_never_accepts_costs_a_bounded_wait():
    """A live run whose loop is stuck: its backlog is full and it never
    accepts. The client's connect used to block for as long as that lasted;
    now the whole exchange has one deadline."""
    import time
    os.makedirs("/run/cordon", mode=0o700, exist_ok=True)
    path = "/run/cordon/run_stuck0test.sock"
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the backlog
            c = socket.socket(socket.AF_UNIX)
            c.setblocking(False)
            try:
                c.connect(path)
            except OSError:
                pass
            fillers.append(c)
        t0 = time.monotonic()
        r = run([CORDON, "approvals", "list", "--json"], timeout=60)
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - t0 < 15
    finally:
        for c in fillers:
            c.close()
        srv.close()
        os.unlink(path)
