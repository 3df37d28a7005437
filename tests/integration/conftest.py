# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the integration tests: they drive the real binary."""
import ctypes
import json
import os
import pwd
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORDON = os.environ.get("CORDON_BIN", str(ROOT / "build" / "cordon"))
ATTACKS = os.environ.get("CORDON_ATTACKS", str(ROOT / "build" / "tests" / "attacks"))
# Inside uid 1000 is host uid BASE+1000 when cordon runs as root; a test run
# may pick its own base (CORDON_HOSTID_BASE), so that two runs on one machine
# do not see each other's sandboxes as leftovers.
HOSTID_BASE = int(os.environ.get("CORDON_HOSTID_BASE") or 1000000000)
HOST_UID = HOSTID_BASE + 1000
IS_ROOT = os.geteuid() == 0


# The parts of Landlock and the ABI that brought each (src/sandbox/protections.c).
LANDLOCK_PARTS = [("fs", 1), ("fs_refer", 2), ("fs_truncate", 3), ("net_tcp", 4),
                  ("fs_ioctl_dev", 5), ("scope", 6)]


def kernel_landlock_abi():
    """The running kernel's Landlock ABI (landlock_create_ruleset's version query)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return max(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)), 0)


def landlock_abi_in_use(env=None):
    """What cordon applies: the kernel's ABI, lowered by CORDON_LANDLOCK_ABI_MAX."""
    abi = kernel_landlock_abi()
    cap = (os.environ if env is None else env).get("CORDON_LANDLOCK_ABI_MAX")
    return min(abi, int(cap)) if cap else abi


def landlock_missing(abi):
    return {name for name, since in LANDLOCK_PARTS if since > abi}


# What each attack program may report as DEGRADED on an ABI, and nothing else:
# the documented behaviour of older kernels (docs/exec.md, "Landlock on older
# kernels"). Anything else DEGRADED is a failure, like anything ESCAPED.
DEGRADED_WITHOUT = {
    "identity": {"net_tcp": {"bind a TCP port"}},
    "proc_mask": {"scope": {"signal pid 1 (SIGTERM)", "signal pid 1 (SIGKILL)"}},
}


def expected_degraded(attack_name, abi):
    missing = landlock_missing(abi)
    want = set()
    for part, names in DEGRADED_WITHOUT.get(attack_name, {}).items():
        if part in missing:
            want |= names
    return want


def check_attack(r, name, abi=None):
    """Nothing ESCAPED, exactly the DEGRADED lines the ABI explains, exit 0;
    returns the BLOCKED lines."""
    lines = r.stdout.splitlines()
    escaped = [l for l in lines if l.startswith("ESCAPED")]
    assert not escaped, "\n".join(escaped) + "\n" + r.stderr
    degraded = {l.split(" ", 1)[1].split(":", 1)[0] for l in lines if l.startswith("DEGRADED")}
    abi = landlock_abi_in_use() if abi is None else abi
    assert degraded == expected_degraded(name, abi), (abi, r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: 0 escaped" in r.stdout
    return [l for l in lines if l.startswith("BLOCKED")]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, skipped in the sanitizer pass")


def run(args, timeout=60, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run([str(a) for a in args], timeout=timeout, **kw)


def cexec(*cmd, opts=(), timeout=60, **kw):
    """cordon exec [opts] -- cmd..."""
    return run([CORDON, "exec", *opts, "--", *cmd], timeout=timeout, **kw)


def attack(name, *args, opts=(), **kw):
    return cexec(f"/attacks/{name}", *args, opts=["--ro", f"{ATTACKS}:/attacks", *opts], **kw)


def status_json(tmp_path, *cmd, opts=(), **kw):
    path = tmp_path / "status.json"
    r = cexec(*cmd, opts=["--status-json", path, *opts], **kw)
    return r, json.loads(path.read_text())


def sandbox_processes():
    """Host processes running as a sandbox uid."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            st = (d / "status").read_text()
        except OSError:
            continue
        m = re.search(r"^Uid:\s+(\d+)", st, re.M)
        state = re.search(r"^State:\s+(\S)", st, re.M)
        if m and int(m.group(1)) == HOST_UID and state and state.group(1) != "Z":
            found.append(int(d.name))
    return found


def cgroup_leftovers():
    """Run cgroups of cordon processes that are no longer alive."""
    left = []
    for base in [Path("/sys/fs/cgroup")]:
        if not base.exists():
            continue
        # os.walk, not rglob: a cgroup removed while the tree is walked
        # (the janitor at work) is skipped, not an error.
        found = [Path(d) / n for d, dirs, _ in os.walk(base) for n in dirs if n.startswith("cordon-")]
        for p in found:
            m = re.match(r"cordon-(\d+)-\d+$", p.name)
            if not m or not p.is_dir():
                continue
            pid = int(m.group(1))
            try:
                os.kill(pid, 0)
                alive = Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
            if not alive:
                left.append(str(p))
    return left


def wait_until(pred, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test must leave no sandbox process and no cgroup behind."""
    yield
    assert wait_until(lambda: not sandbox_processes()), f"processes left: {sandbox_processes()}"
    assert wait_until(lambda: not cgroup_leftovers()), f"cgroups left: {cgroup_leftovers()}"


@pytest.fixture
def nobody():
    """Run cordon as an unprivileged user (rootless mode)."""
    if not IS_ROOT:
        pytest.skip("needs root to switch to an unprivileged user")
    pw = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
