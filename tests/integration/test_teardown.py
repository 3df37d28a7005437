# SPDX-License-Identifier: Apache-2.0
"""Teardown leaves nothing behind: no process, mount, cgroup, fd or temp dir."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, cexec, cgroup_leftovers, sandbox_processes, wait_until


def host_state():
    mounts = Path("/proc/self/mountinfo").read_text()
    tmp = set(os.listdir("/tmp"))
    return mounts, tmp


@pytest.mark.parametrize("cmd,opts,code", [
    (["true"], [], 0),
    (["sh", "-c", "exit 3"], [], 3),
    (["sleep", "30"], ["--timeout", "300ms"], 124),
    (["python3", "-c", "bytearray(512<<20)"], ["--mem", "64m"], 137),
    (["/missing"], [], 127),
])
def test_nothing_left_after(cmd, opts, code):
    before = host_state()
    r = cexec(*cmd, opts=opts)
    assert r.returncode == code, r.stderr
    assert host_state() == before


def test_timeout_kills_the_whole_tree():
    script = ("trap '' TERM HUP INT; "
              "(trap '' TERM; sleep 600) & "
              "setsid sh -c 'trap \"\" TERM; sleep 600' & "
              "sh -c 'sleep 600 &' ; sleep 600")
    t0 = time.monotonic()
    r = cexec("sh", "-c", script, opts=["--timeout", "1s"])
    assert r.returncode == 124
    assert time.monotonic() - t0 < 10
    # the autouse fixture checks that no sandbox process survived


def test_sigkill_of_cordon_takes_the_sandbox_down():
    before = host_state()
    p = subprocess.Popen([CORDON, "exec", "--", "sh", "-c", "sleep 600 & sleep 600"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: len(sandbox_processes()) >= 3, timeout=10)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    assert wait_until(lambda: not sandbox_processes(), timeout=10), sandbox_processes()
    assert wait_until(lambda: not cgroup_leftovers(), timeout=10), cgroup_leftovers()
    assert host_state() == before


def test_sigterm_is_forwarded_and_cordon_exits_with_the_status():
    p = subprocess.Popen([CORDON, "exec", "--", "sh", "-c", "trap 'echo got-term; exit 9' TERM; sleep 600 & wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: len(sandbox_processes()) >= 3, timeout=10)
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert "got-term" in out
    assert p.returncode == 9


def test_setup_failure_leaves_nothing(tmp_path):
    before = host_state()
    # a bind onto a read-only system path cannot create its mount point
    # (the directory itself is one the sandbox's user may read: pytest
    # makes it 0700, which the up-front access check would refuse first)
    os.chmod(tmp_path, 0o755)
    r = cexec("true", opts=["--ro", f"{tmp_path}:/usr/cordon-nope"])
    assert r.returncode == 125
    assert "sandbox setup" in r.stderr and "/usr/cordon-nope" in r.stderr
    assert host_state() == before


def test_many_sandboxes_in_a_row_leak_nothing():
    before = host_state()
    for _ in range(20):
        assert cexec("true").returncode == 0
    assert host_state() == before
