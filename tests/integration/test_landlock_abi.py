# SPDX-License-Identifier: Apache-2.0
"""What cordon does on an older Landlock ABI (docs/exec.md, "Landlock on older
kernels"): it runs, applies the parts the ABI has, and says so part by part in
the status file, result.json and the sandbox.ready event, never as a whole.

ABI 2 is Debian 12's own kernel (6.1; make test-v2 runs these there for
real). No Debian kernel has ABI 3, so on a newer kernel CORDON_LANDLOCK_ABI_MAX
lowers the ABI to show both.
"""
import json
import os

import pytest

from conftest import (ATTACKS, LANDLOCK_PARTS, cexec, check_attack, kernel_landlock_abi,
                      landlock_missing)
from test_run import cordon, crun, make_agent, result_of, state  # noqa: F401 (a fixture)

ABIS = [a for a in (2, 3) if a <= kernel_landlock_abi()]


def env_abi(abi):
    return dict(os.environ, CORDON_LANDLOCK_ABI_MAX=str(abi))


def assert_landlock(p, abi):
    ll = p["landlock"]
    assert p["landlock_abi"] == ll["abi"] == abi
    assert set(ll["missing"]) == landlock_missing(abi)
    assert ll["applied"] == [n for n, since in LANDLOCK_PARTS if since <= abi]
    # the choice: an older ABI runs without --allow-degraded, and is not
    # counted as an operator-lowered protection
    assert p["degraded"] == []


@pytest.mark.parametrize("abi", ABIS)
def test_older_abi_runs_and_reports_each_part(tmp_path, abi):
    st = tmp_path / "st.json"
    r = cexec("true", opts=["--status-json", st], env=env_abi(abi))
    assert r.returncode == 0, r.stderr
    p = json.loads(st.read_text())["protections"]
    assert_landlock(p, abi)
    assert p["landlock"]["missing"]["net_tcp"] == "network namespace"
    assert p["landlock"]["missing"]["scope"] == "pid and network namespaces"
    assert ("fs_truncate" in p["landlock"]["applied"]) == (abi >= 3)


@pytest.mark.parametrize("abi", ABIS)
def test_older_abi_attacks_show_only_the_documented_differences(abi):
    for name in ["fs_escape", "identity", "proc_mask", "syscalls"]:
        r = cexec(f"/attacks/{name}", opts=["--ro", f"{ATTACKS}:/attacks"], env=env_abi(abi))
        check_attack(r, name, abi)
    # the file system rules still hold: writes outside the granted trees
    r = cexec("sh", "-c", "echo x > /etc/hosts; echo x > /workspace/ok && echo wrote",
              env=env_abi(abi))
    assert "wrote" in r.stdout and "Read-only" in r.stderr


def test_no_landlock_at_all_still_refuses():
    """A missing Landlock is a missing protection: refused unless allowed."""
    r = cexec("true", env=env_abi(0))
    assert r.returncode == 125 and "--allow-degraded=landlock" in r.stderr


@pytest.mark.parametrize("abi", ABIS[:1])
def test_a_run_reports_the_parts_in_result_and_event(state, tmp_path, abi):  # noqa: F811
    ag = make_agent(tmp_path, "abi", "echo hi\n")
    r, evs = crun(state, ag, env={"CORDON_LANDLOCK_ABI_MAX": str(abi)})
    assert r.returncode == 0, r.stderr
    ready = [e for e in evs if e["type"] == "sandbox.ready"]
    assert len(ready) == 1
    assert_landlock(ready[0]["protections"], abi)
    res = result_of(state, evs[0]["run_id"])
    assert res["protections"] == ready[0]["protections"]
    # the progress view names the parts too
    r = cordon(state, "run", ag, env={"CORDON_LANDLOCK_ABI_MAX": str(abi)})
    assert "landlock v%d (fs, fs_refer%s only)" % (abi, ", fs_truncate" if abi >= 3 else "") in r.stdout
