# SPDX-License-Identifier: Apache-2.0
"""Rootless mode: cordon run by an unprivileged user, through user namespaces."""
import json
import os
import pwd
import shutil
import tempfile

import pytest

from conftest import ATTACKS, CORDON, run


def rootless(nobody, *args, **kw):
    return run([*nobody, CORDON, *args], **kw)


def test_rootless_refuses_without_cgroups_unless_allowed(nobody):
    r = rootless(nobody, "exec", "--", "true")
    # an unprivileged user cannot create cgroups here: fail closed
    if r.returncode == 0:
        pytest.skip("this host delegates a cgroup to unprivileged users")
    assert r.returncode == 125
    assert "cgroup" in r.stderr and "--allow-degraded=cgroup" in r.stderr


def test_rootless_runs_with_degraded_cgroup_and_records_it(nobody):
    d = tempfile.mkdtemp(prefix="cordon-rootless-")
    os.chmod(d, 0o777)
    st_path = os.path.join(d, "st.json")
    r = rootless(nobody, "exec", "--allow-degraded=cgroup", "--status-json", st_path, "--",
                 "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "1000"
    assert lines[1:4] == ["1000", str(pwd.getpwnam("nobody").pw_uid), "1"]
    with open(st_path) as f:
        st = json.load(f)
    shutil.rmtree(d)
    assert st["protections"]["rootless"] is True
    assert st["protections"]["cgroup"] is None
    assert st["protections"]["degraded"] == ["cgroup"]
    assert st["protections"]["seccomp"] is True and st["protections"]["landlock_abi"] > 0


def test_rootless_attacks_are_blocked(nobody):
    for name in ["syscalls", "abi", "proc_mask", "identity"]:
        r = rootless(nobody, "exec", "--allow-degraded=cgroup", "--ro", f"{ATTACKS}:/attacks", "--",
                     f"/attacks/{name}")
        assert "ESCAPED" not in r.stdout, r.stdout
        assert r.returncode == 0, r.stdout + r.stderr


def test_rootless_timeout_still_kills(nobody):
    r = rootless(nobody, "exec", "--allow-degraded=cgroup", "--timeout", "500ms", "--", "sleep", "30")
    assert r.returncode == 124
