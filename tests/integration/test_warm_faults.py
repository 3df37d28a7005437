# SPDX-License-Identifier: Apache-2.0
"""The warm path where something fails (docs/exec.md, "Warm sandboxes"):
a host where a warm sandbox cannot be made must run like a cold one and
lose no run, a warm pool that cannot start its processes must not flood the
log, and a standby that does not go must not keep the server up."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, IS_ROOT, wait_until
from test_metrics import value
from test_serve import Server, agent
from test_warm import metrics, standbys

# A cgroup v1 host whose cpu and cpuacct hierarchies cordon may not write
# (a container that delegates only memory and pids, say): a cold sandbox
# without a cpu limit never needs them.
RO_CPU = ("mount -o bind,remount,ro /sys/fs/cgroup/cpu && "
          "mount -o bind,remount,ro /sys/fs/cgroup/cpuacct && exec \"$@\"")


def v1_cpu_mounts():
    try:
        mounts = open("/proc/self/mounts").read().splitlines()
    except OSError:
        return False
    pts = {l.split()[1]: l.split()[2] for l in mounts}
    return all(pts.get(f"/sys/fs/cgroup/{c}") == "cgroup" for c in ("cpu", "cpuacct", "memory",
                                                                   "pids"))


needs_v1_cpu = pytest.mark.skipif(not (IS_ROOT and v1_cpu_mounts() and shutil.which("unshare")),
                                  reason="needs root and cgroup v1 with cpu, cpuacct, memory "
                                  "and pids mounted apart")


def in_ro_cpu(cmd):
    """cmd in a mount namespace of its own where the cpu hierarchies are
    read-only (the host's stay as they are)."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", RO_CPU, "sh", *cmd]


@needs_v1_cpu
def test_warm_sandbox_without_a_writable_cpu_hierarchy_runs_like_a_cold_one():
    """Cold: only the hierarchies a limit needs are joined, so this runs.
    Warm must too: joining every hierarchy ahead is an optimisation, and
    one it cannot join is one no run without a cpu limit needs."""
    for warm in ("0", "1"):
        r = subprocess.run(in_ro_cpu([CORDON, "exec", "--", "echo", "hi"]),
                           env=dict(os.environ, CORDON_SANDBOX_WARM=warm),
                           capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout) == (0, "hi\n"), (warm, r.stderr)


def copy_of_cordon(tmp_path):
    """A copy of cordon's binaries in a directory of the test's own: serve
    starts runs and standbys from its sibling cordon-full."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    src = os.path.dirname(os.path.realpath(CORDON))
    for f in os.listdir(src):
        p = os.path.join(src, f)
        if f.startswith("cordon") and os.path.isfile(p) and os.access(p, os.X_OK):
            shutil.copy(p, bindir / f)
    return bindir


class OwnServer(Server):
    """A server started from bindir; ro_cpu: in_ro_cpu."""

    def __init__(self, tmp_path, bindir, ro_cpu=False, extra=()):
        super().__init__(tmp_path, extra=extra)
        self.bin = str(bindir / "cordon")
        self.ro_cpu = ro_cpu

    def start(self):
        from test_serve import free_port
        self.port = free_port()
        cmd = [self.bin, "serve", "--listen", f"127.0.0.1:{self.port}", *self.extra]
        self.proc = subprocess.Popen(in_ro_cpu(cmd) if self.ro_cpu else cmd, env=self.env,
                                     stderr=open(self.log, "w"))
        assert wait_until(lambda: (self.state / "serve.sock").exists()
                          and self.health() is not None, 5), self.log.read_text()


def prepare(srv, tmp_path):
    r = srv.cli("init")
    assert r.returncode == 0, r.stderr
    srv.owner = r.stdout.strip().splitlines()[-1]
    assert srv.cli("agent", "register", str(agent(tmp_path, "hello", "echo hi\n"))).returncode == 0


@needs_v1_cpu
def test_runs_given_to_standbys_that_cannot_make_a_warm_sandbox_are_not_lost(tmp_path):
    """docs/exec.md: a standby that cannot make a warm sandbox exits, and
    runs start cold. A run handed to such a standby before it exited (any
    run dispatched while the pool is starting, at serve's start and at
    every retry) must start cold too, not end in "the run process exited
    before it started"."""
    bindir = copy_of_cordon(tmp_path)
    # The standbys take a second to start (a loaded host): the runs below
    # are handed to them before they find they cannot make their sandbox.
    # The wrapper execs the build's own cordon-full, so the standby's
    # process is named cordon-full as a real one is: a run starting beside it
    # judges it alive (store_runs_recover checks the supervisor's name; a
    # copy renamed cordon-full.real was judged dead now and then).
    real = Path(os.path.dirname(os.path.realpath(CORDON))) / "cordon-full"
    os.unlink(bindir / "cordon-full")
    (bindir / "cordon-full").write_text(
        f'#!/bin/sh\ncase "$*" in *--standby*) sleep 1;; esac\nexec {real} "$@"\n')
    os.chmod(bindir / "cordon-full", 0o755)
    srv = OwnServer(tmp_path, bindir, ro_cpu=True, extra=["--warm-pool", "2"])
    prepare(srv, tmp_path)
    srv.start()
    try:
        ids = []
        for _ in range(2):
            st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "hello"})
            assert st == 202, j
            ids.append(j["id"])
        for i in ids:
            rec = srv.wait_final(srv.owner, i)
            assert rec["status"] == "succeeded", (rec.get("error"), rec)
    finally:
        srv.stop(signal.SIGKILL)


def test_a_pool_that_cannot_start_its_processes_backs_off(tmp_path):
    """When the run binary cannot be started (removed by an upgrade, or
    fork failing under a process limit) the pool must try again later, not
    on every turn of the dispatcher: that is a hundred failed spawns and log
    lines a second."""
    bindir = copy_of_cordon(tmp_path)
    srv = OwnServer(tmp_path, bindir, extra=["--warm-pool", "1"])
    prepare(srv, tmp_path)
    srv.start()
    try:
        assert wait_until(lambda: value(metrics(srv), "cordon_warm_pool_size") == 1, 20)
        os.unlink(bindir / "cordon-full")
        # the run takes the standby; the pool then cannot start another
        st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "hello"})
        assert st == 202, j
        srv.wait_final(srv.owner, j["id"])
        time.sleep(0.5)
        n0 = srv.log.read_text().count("warm pool: cannot start")
        time.sleep(2)
        n1 = srv.log.read_text().count("warm pool: cannot start")
        assert n1 - n0 <= 3, f"{n1 - n0} failed starts in 2 s"
    finally:
        srv.stop(signal.SIGKILL)


def test_serve_stops_even_when_a_standby_does_not_go(tmp_path):
    """pool_close only closes the standbys' pipes and the dispatcher then
    waits for every standby to exit: one that is stuck before it reads its
    pipe (stopped here; a store that does not answer, in life) keeps a
    SIGTERM'd server up for ever. The drain must end it as it ends runs."""
    srv = Server(tmp_path, extra=["--warm-pool", "1"])
    prepare(srv, tmp_path)
    srv.start()
    sb = []
    try:
        assert wait_until(lambda: value(metrics(srv), "cordon_warm_pool_size") == 1, 20)
        sb = standbys(srv.state, srv.proc.pid)
        assert len(sb) == 1
        os.kill(sb[0], signal.SIGSTOP)
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit within 10 s of SIGTERM with a stopped standby")
        srv.proc = None
    finally:
        for p in sb:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        srv.stop(signal.SIGKILL)
