# SPDX-License-Identifier: Apache-2.0
"""cordon on cgroup v2: the cgroup a sandbox gets, how it gets there
(clone3 with CLONE_INTO_CGROUP), its limits at work, what is read back, and
the delegated (rootless) layouts.

This host is cgroup v1, so these run in `make test-v2`, inside a guest with
Debian 12's own kernel (../shared/vm/run-in-vm). They skip on a v1 host,
unless CORDON_TEST_V2=1 (set by make test-v2) turns the skip into a failure.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import CORDON, IS_ROOT, cexec, sandbox_processes, wait_until

CG = Path("/sys/fs/cgroup")


def fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(autouse=True)
def v2_only():
    if fs_type(CG) != "cgroup2fs" or not IS_ROOT:
        if os.environ.get("CORDON_TEST_V2") == "1":
            pytest.fail("CORDON_TEST_V2=1 but this is not cgroup v2 as root")
        pytest.skip("needs cgroup v2 and root (make test-v2)")


def sandbox_cgroups(pid):
    return list((CG / "cordon").glob(f"cordon-{pid}-*"))


def read(p):
    return Path(p).read_text().strip()


def test_limits_are_set_in_the_sandboxs_v2_cgroup():
    p = subprocess.Popen([CORDON, "exec", "--mem", "64m", "--pids", "32", "--cpu", "0.5", "--",
                          "sh", "-c", "sleep 600 & sleep 600"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(sandbox_processes()) >= 3, timeout=30), p.stderr
        [cg] = sandbox_cgroups(p.pid)
        assert fs_type(cg) == "cgroup2fs"
        assert read(cg / "memory.max") == str(64 << 20)
        assert read(cg / "memory.swap.max") == "0"
        assert read(cg / "memory.oom.group") == "1"
        assert read(cg / "pids.max") == "32"
        assert read(cg / "cpu.max") == "50000 100000"
        # every sandbox process is in it (the attack `identity` checks that
        # the sandbox sees it as its cgroup namespace's root)
        procs = {int(x) for x in read(cg / "cgroup.procs").split()}
        assert set(sandbox_processes()) <= procs and len(procs) >= 3
        host_view = {read(f"/proc/{pid}/cgroup") for pid in procs}
        assert host_view == {f"0::/cordon/{cg.name}"}
    finally:
        p.terminate()
        p.communicate(timeout=30)
    assert p.returncode == 143
    assert not cg.exists()


def test_the_child_is_cloned_into_its_cgroup(tmp_path):
    """clone3(CLONE_INTO_CGROUP): the sandbox starts in its cgroup, and the
    supervisor never writes a pid to a cgroup.procs."""
    if not shutil.which("strace"):
        pytest.fail("strace is missing (scripts/bootstrap installs it)")
    out = tmp_path / "strace"
    r = subprocess.run(["strace", "-qq", "-e", "trace=clone3,openat", "-e", "signal=none", "-o",
                        str(out), CORDON, "exec", "--", "true"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    calls = out.read_text()
    clones = [l for l in calls.splitlines() if l.startswith("clone3(")]
    assert len(clones) == 1 and "CLONE_INTO_CGROUP" in clones[0], clones
    assert "CLONE_NEWUSER" in clones[0] and "CLONE_NEWPID" in clones[0]
    assert not [l for l in calls.splitlines() if "cgroup.procs" in l and "O_WRONLY" in l]
    # and the trace shows the cgroup made before the clone
    r = cexec("true", env=dict(os.environ, CORDON_TRACE="1"))
    steps = [l.split()[1] for l in r.stderr.splitlines() if l.startswith("cordon-trace:")]
    assert steps.index("cgroup") < steps.index("clone")


def test_peak_memory_is_the_cgroups(tmp_path):
    """memory.peak counts what the sandbox holds, tmpfs pages included, where
    a process's own peak (ru_maxrss) would see a few MiB of dd."""
    st = tmp_path / "st.json"
    r = cexec("dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=40",
              opts=["--mem", "256m", "--status-json", st], timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads(st.read_text())
    assert s["protections"]["cgroup"] == "v2"
    assert 40 << 20 <= s["mem_peak_bytes"] <= 256 << 20


def test_oom_kills_the_whole_sandbox_and_says_so(tmp_path):
    st = tmp_path / "st.json"
    r = cexec("sh", "-c", "sleep 600 & python3 -c 'b=[]\nwhile True: b.append(bytearray(8<<20))'",
              opts=["--mem", "64m", "--status-json", st], timeout=120)
    assert r.returncode == 137, r.stderr
    s = json.loads(st.read_text())
    assert s["oom_killed"] is True and s["exit_code"] == 137
    # the peak is read back from the cgroup: near the limit, never above
    assert 32 << 20 <= s["mem_peak_bytes"] <= 64 << 20
    # memory.oom.group: the sleeper went too (the autouse fixture checks)


def test_cpu_max_throttles(tmp_path):
    st = tmp_path / "st.json"
    r = cexec("sh", "-c", "while :; do :; done",
              opts=["--cpu", "0.25", "--timeout", "3s", "--status-json", st], timeout=120)
    assert r.returncode == 124
    s = json.loads(st.read_text())
    # a quarter of a core, with slack for the periods at start and end
    assert 0.05 * s["wall_ms"] <= s["cpu_ms"] <= 0.4 * s["wall_ms"], s


def test_pids_max_stops_a_fork_bomb_at_the_limit(tmp_path):
    r = cexec("sh", "-c", "for i in $(seq 40); do sleep 60 & done 2>&1; wait",
              opts=["--pids", "16", "--timeout", "10s"], timeout=120)
    assert "fork" in r.stdout.lower() or "resource" in r.stdout.lower(), r.stdout


@pytest.fixture
def scratch_cgroup():
    """A cgroup of the test's own (not named cordon-PID-N, so the leftover
    check leaves it alone), removed afterwards with whatever is under it."""
    made = []

    def make(name):
        d = CG / f"v2test-{name}-{os.getpid()}"
        d.mkdir()
        made.append(d)
        return d
    yield make
    for d in made:
        for sub in sorted(d.rglob("*"), key=lambda x: -len(x.parts)):
            if sub.is_dir():
                for pid in read(sub / "cgroup.procs").split():
                    os.kill(int(pid), 9)
                wait_until(lambda: not read(sub / "cgroup.procs"))
                sub.rmdir()
        for pid in read(d / "cgroup.procs").split():
            os.kill(int(pid), 9)
        wait_until(lambda: not read(d / "cgroup.procs"))
        d.rmdir()


def test_a_parent_holding_processes_is_refused_with_the_reason(scratch_cgroup):
    busy = scratch_cgroup("busy")
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        r = cexec("true", env=dict(os.environ, CORDON_CGROUP_PARENT=str(busy)))
        assert r.returncode == 125
        assert f"below {busy}, which holds processes" in r.stderr, r.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


def delegate(d):
    """What systemd's Delegate=yes does: the user owns the cgroup and its files."""
    subprocess.run(["chown", "-R", "nobody:nogroup", str(d)], check=True)


def rootless_in(cgroup, parent, *cmd, status=None):
    """Run cordon as nobody, started inside `cgroup` (as under systemd-run
    --user --scope -p Delegate=yes), with CORDON_CGROUP_PARENT=parent."""
    script = f'echo $$ > {cgroup}/cgroup.procs && exec "$@"'
    argv = ["sh", "-c", script, "sh", "setpriv", "--reuid=nobody", "--regid=nogroup",
            "--clear-groups", "env", f"CORDON_CGROUP_PARENT={parent}", CORDON, "exec",
            "--mem", "64m", "--pids", "32"]
    if status:
        argv += ["--status-json", str(status)]
    return subprocess.run(argv + ["--", *cmd], capture_output=True, text=True, timeout=120,
                          cwd="/")


@pytest.mark.parametrize("below", ["", "/sandboxes"])
def test_rootless_in_a_delegated_cgroup(scratch_cgroup, below):
    """cordon sits in the delegated cgroup; cgroup v2 lets no process sit
    where controllers are handed on, so it moves into a leaf of its own
    (cordon-supervisor) and puts the sandboxes beside it or below."""
    scope = scratch_cgroup("scope")
    delegate(scope)
    d = tempfile.mkdtemp(prefix="cordon-v2-")  # pytest's tmp_path is root's alone
    os.chmod(d, 0o777)
    st = Path(d) / "st.json"
    r = rootless_in(scope, f"{scope}{below}", "cat", "/proc/self/cgroup", status=st)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0::/"
    s = json.loads(st.read_text())
    shutil.rmtree(d)
    assert s["protections"]["cgroup"] == "v2" and s["protections"]["rootless"] is True
    assert s["protections"]["degraded"] == []
    assert (scope / "cordon-supervisor").is_dir()
    assert not list(Path(f"{scope}{below}").glob("cordon-[0-9]*"))


def test_rootless_outside_its_delegated_cgroup_says_why(scratch_cgroup):
    deleg = scratch_cgroup("deleg")
    delegate(deleg)
    r = rootless_in(CG, deleg, "true")
    assert r.returncode == 125
    assert "must itself run inside the delegated cgroup" in r.stderr, r.stderr
    assert not list(deleg.glob("cordon-[0-9]*"))
