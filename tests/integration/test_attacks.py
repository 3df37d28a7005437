# SPDX-License-Identifier: Apache-2.0
"""Attack programs run inside the real sandbox; every attempt must be blocked."""
import os
import re
import subprocess

import pytest

from conftest import ATTACKS, CORDON, attack, cexec, check_attack, run


def check(r, name=""):
    """Nothing escaped; on an older Landlock ABI, exactly the documented
    DEGRADED lines (conftest.DEGRADED_WITHOUT)."""
    return check_attack(r, name)


def test_denied_syscalls():
    lines = check(attack("syscalls"))
    assert len(lines) >= 60


def test_denied_syscalls_with_a_terminal_on_stdin():
    """TIOCSTI only means something with a real terminal; give it one."""
    r = run(["script", "-qec", f"{CORDON} exec --ro {ATTACKS}:/attacks -- /attacks/syscalls", "/dev/null"])
    text = r.stdout.replace("\r", "")
    assert "BLOCKED ioctl TIOCSTI: Operation not permitted" in text
    assert "BLOCKED ioctl TIOCSTI high bits: Operation not permitted" in text
    assert "ESCAPED" not in text and "OK: 0 escaped" in text


def test_x32_and_int80_are_killed():
    lines = check(attack("abi"))
    assert len(lines) == 4
    assert all("SIGSYS" in l for l in lines)


def test_host_files_and_writes(tmp_path):
    ro = tmp_path / "granted"
    ro.mkdir()
    (ro / "f").write_text("x")
    check(attack("fs_escape", "/granted", opts=["--ro", f"{ro}:/granted"]))
    assert not (ro / "evil").exists()


def test_proc_masking_and_pid1():
    check(attack("proc_mask"), "proc_mask")


def test_identity_caps_fds_network():
    check(attack("identity"), "identity")


def test_fds_of_the_caller_do_not_leak(tmp_path):
    """Open descriptors of the supervisor's caller stay outside."""
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    with open(secret) as f:
        fd = f.fileno()
        os.set_inheritable(fd, True)
        r = subprocess.run([CORDON, "exec", "--ro", f"{ATTACKS}:/attacks", "--", "/attacks/identity"],
                           pass_fds=(fd,), capture_output=True, text=True, timeout=60)
    check(r, "identity")
    r = cexec("sh", "-c", "cat /proc/self/fd/3 /dev/fd/3 2>&1; ls /proc/self/fd")
    assert "host secret" not in r.stdout


def test_symlinks_in_a_granted_tree_stay_inside(tmp_path):
    """A granted tree full of symlinks to host paths reaches nothing outside."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "shadow").symlink_to("/etc/shadow")
    (tree / "root").symlink_to("/")
    (tree / "up").symlink_to("../../../../../../../../etc")
    (tree / "hostfile").symlink_to(str(tmp_path / "outside.txt"))
    (tmp_path / "outside.txt").write_text("outside")
    r = cexec("sh", "-c", "cat /t/shadow; cat /t/hostfile; ls /t/root/; cat /t/up/shadow; echo done",
              opts=["--ro", f"{tree}:/t"])
    assert "outside" not in r.stdout
    assert "root:" not in r.stdout
    assert "done" in r.stdout
    # /t/root/ resolves to the sandbox's own root
    assert "workspace" in r.stdout


def test_symlink_steering_a_bind_target(tmp_path):
    """A bind target that passes through a symlink in an earlier bind is
    resolved inside the sandbox root, never on the host."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "escape").symlink_to("/etc")
    (repo / "abs").symlink_to(str(tmp_path))
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "p.txt").write_text("payload")
    host_etc_before = set(os.listdir("/etc"))
    r = cexec("sh", "-c", "cat /etc/x/p.txt; ls /etc",
              opts=["--ro", f"{repo}:/repo", "--ro", f"{payload}:/repo/escape/x"])
    assert r.returncode == 0, r.stderr
    assert "payload" in r.stdout
    assert set(os.listdir("/etc")) == host_etc_before, "a mount point was created on the host"
    # an absolute link to a host directory: the target lands inside the root
    r = cexec("sh", "-c", "cat /repo/abs/y/p.txt 2>&1; echo; ls " + str(tmp_path) + "/y 2>&1",
              opts=["--ro", f"{repo}:/repo", "--ro", f"{payload}:/repo/abs/y"])
    assert not (tmp_path / "y").exists()


def test_fork_bomb_is_contained():
    r = attack("forkbomb", opts=["--pids", "64", "--timeout", "3s"], timeout=30)
    assert r.returncode == 124
    m = re.search(r"fork refused after (\d+)", r.stdout)
    assert m and int(m.group(1)) < 64


def test_memory_bomb_is_oom_killed(tmp_path):
    r = cexec("python3", "-c", "b=[]\nwhile True: b.append(bytearray(16<<20))",
              opts=["--mem", "128m", "--status-json", tmp_path / "s.json"], timeout=60)
    assert r.returncode == 137
    import json
    st = json.loads((tmp_path / "s.json").read_text())
    assert st["oom_killed"] is True
    assert st["mem_peak_bytes"] <= 128 << 20


def test_filling_tmp_and_workspace_stops_at_the_limit():
    r = cexec("sh", "-c", "cat /dev/zero > /tmp/fill; echo tmp=$?; cat /dev/zero > /workspace/fill; echo ws=$?; "
              "ls -l /tmp/fill /workspace/fill",
              opts=["--tmp-size", "8m", "--workspace-size", "16m", "--mem", "256m"], timeout=60)
    assert "tmp=1" in r.stdout and "ws=1" in r.stdout
    sizes = [int(l.split()[4]) for l in r.stdout.splitlines() if l.startswith("-")]
    assert sizes and max(sizes) <= 16 << 20


def test_file_size_limit():
    r = cexec("sh", "-c", "head -c 2000000 /dev/zero > /workspace/big", opts=["--fsize", "1m"])
    assert r.returncode != 0
    r = cexec("sh", "-c", "head -c 2000000 /dev/zero > /workspace/big; stat -c %s /workspace/big",
              opts=["--fsize", "1m"])
    assert "1048576" in r.stdout


def test_open_file_limit():
    r = cexec("python3", "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))",
              opts=["--nofile", "64"])
    assert r.stdout.strip() == "(64, 64)"
    r = cexec("python3", "-c", "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))",
              opts=["--nofile", "64"])
    assert r.returncode != 0 and "not allowed" in r.stderr.lower() or "permission" in r.stderr.lower()
