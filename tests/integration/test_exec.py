# SPDX-License-Identifier: Apache-2.0
"""cordon exec: the command runs in a fresh sandbox with the promised shape."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import (CORDON, HOST_UID, LANDLOCK_PARTS, cexec, landlock_abi_in_use,
                      landlock_missing, run, status_json)


def test_help_and_version():
    r = run([CORDON, "exec", "--help"])
    assert r.returncode == 0
    for opt in ["--ro", "--rw", "--workspace", "--mem", "--pids", "--cpu", "--timeout",
                "--tmp-size", "--nofile", "--fsize", "--profile", "--allow-degraded",
                "--status-json", "--net"]:
        assert opt in r.stdout, opt
    assert run([CORDON, "--help"]).returncode == 0
    assert re.match(r"cordon \d+\.\d+", run([CORDON, "--version"]).stdout)


@pytest.mark.parametrize("args,msg", [
    (["exec"], "no command"),
    (["exec", "--mem", "12x", "--", "true"], "--mem"),
    (["exec", "--timeout", "1w", "--", "true"], "unknown unit"),
    (["exec", "--cpu", "abc", "--", "true"], "--cpu"),
    (["exec", "--profile", "nope", "--", "true"], "unknown profile"),
    (["exec", "--net", "wifi", "--", "true"], "--net"),
    (["exec", "--env", "1BAD=x", "--", "true"], "bad variable name"),
    (["exec", "--env", "NOEQUALS", "--", "true"], "NAME=VALUE"),
    (["exec", "--ro", "/does/not/exist", "--", "true"], "/does/not/exist"),
    (["exec", "--ro", "/usr:relative", "--", "true"], "absolute"),
    (["exec", "--ro", "/usr:/a/../b", "--", "true"], "'..'"),
    (["exec", "--allow-degraded", "everything", "--", "true"], "unknown protection"),
    (["exec", "--bogus", "--", "true"], ""),
    (["nosuchcommand"], "unknown command"),
])
def test_bad_usage_is_125_with_a_message(args, msg):
    r = run([CORDON, *args])
    assert r.returncode == 125
    assert "cordon" in r.stderr or "Usage" in r.stderr or "unrecognized" in r.stderr
    assert msg in r.stderr


def test_exit_codes():
    assert cexec("sh", "-c", "exit 0").returncode == 0
    assert cexec("sh", "-c", "exit 7").returncode == 7
    assert cexec("sh", "-c", "kill -TERM $$").returncode == 128 + 15
    assert cexec("sh", "-c", "kill -KILL $$").returncode == 128 + 9
    r = cexec("/no/such/binary")
    assert r.returncode == 127 and "No such file" in r.stderr
    r = cexec("no-such-command-anywhere")
    assert r.returncode == 127
    r = cexec("/etc/hostname")  # exists, not executable
    assert r.returncode == 126 and "Permission denied" in r.stderr


def test_identity_and_namespaces():
    r = cexec("sh", "-c", "id -u; id -g; id -G; hostname; readlink /proc/self/ns/user /proc/self/ns/mnt /proc/self/ns/net /proc/self/ns/pid /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/cgroup")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0:3] == ["1000", "1000", "1000"]
    assert lines[3] == "cordon"
    host = {n: os.readlink(f"/proc/self/ns/{n}") for n in ["user", "mnt", "net", "pid", "ipc", "uts", "cgroup"]}
    inside = lines[4:]
    assert len(inside) == 7
    for ns in inside:
        assert ns not in host.values(), f"namespace shared with the host: {ns}"


def test_uid_gid_options():
    r = cexec("sh", "-c", "id -u; id -g; whoami", opts=["--uid", "4242", "--gid", "4343"])
    assert r.stdout.split()[:2] == ["4242", "4343"]


def test_runs_as_unprivileged_host_uid():
    r = cexec("sleep", "0.3", opts=[])
    assert r.returncode == 0
    r = cexec("cat", "/proc/self/uid_map")
    fields = r.stdout.split()
    assert fields[0] == "1000"
    if os.geteuid() == 0:
        assert fields[1] == str(HOST_UID)
    assert fields[2] == "1"


def test_environment_is_cleared():
    env = dict(os.environ, SECRET_FROM_HOST="leak", AWS_SECRET_ACCESS_KEY="x")
    r = cexec("env", opts=["--env", "FOO=bar"], env=env)
    names = {l.split("=", 1)[0] for l in r.stdout.splitlines()}
    assert names <= {"PATH", "HOME", "LANG", "FOO", "PWD", "SHLVL", "_"}
    assert "FOO=bar" in r.stdout
    assert "leak" not in r.stdout
    r = cexec("sh", "-c", "echo $PATH", opts=["--env", "PATH=/bin"])
    assert r.stdout.strip() == "/bin"


def test_root_filesystem_shape():
    r = cexec("sh", "-c", "ls -A /; echo ---; cat /etc/passwd; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; ls /dev")
    out = r.stdout.split("---\n")
    top = set(out[0].split())
    assert {"usr", "etc", "proc", "dev", "tmp", "workspace"} <= top
    assert not top & {"root", "home", "sys", "boot", "var", "mnt", "srv", "opt", "run"}
    assert "agent:x:1000:1000" in out[1]
    assert "root:" not in out[1]
    assert "nameserver 127.0.0.1" in out[2]
    assert "localhost" in out[3]
    assert set(out[4].split()) == {"null", "zero", "full", "random", "urandom", "fd", "stdin",
                                   "stdout", "stderr", "ptmx", "pts", "shm"}


def test_mount_flags():
    r = cexec("cat", "/proc/self/mountinfo")
    mounts = {}
    for line in r.stdout.splitlines():
        f = line.split()
        mounts[f[4]] = f[5]
    assert mounts["/"].startswith("ro")
    assert mounts["/usr"].startswith("ro")
    assert "nosuid" in mounts["/usr"] and "nodev" in mounts["/usr"]
    assert mounts["/workspace"].startswith("rw")
    assert mounts["/tmp"].startswith("rw")
    assert mounts["/proc/sys"].startswith("ro")
    for m, flags in mounts.items():
        assert "nosuid" in flags, m
    # nothing of the host's own mount table is visible
    assert not any(m.startswith("/sys") or m.startswith("/mnt") for m in mounts)


def test_binds(tmp_path):
    ro = tmp_path / "ro"
    rw = tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    os.chmod(rw, 0o777)
    (ro / "data.txt").write_text("hello")
    r = cexec("sh", "-c", "cat /in/data.txt; echo out > /out/result.txt; echo x > /in/nope",
              opts=["--ro", f"{ro}:/in", "--rw", f"{rw}:/out"])
    assert r.stdout.startswith("hello")
    assert "Read-only file system" in r.stderr
    assert (rw / "result.txt").read_text() == "out\n"
    assert not (ro / "nope").exists()
    # SRC alone binds at the same path
    r = cexec("cat", f"{ro}/data.txt", opts=["--ro", str(ro)])
    assert r.stdout == "hello"


def test_workspace_dir_and_tmpfs(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chmod(ws, 0o777)
    r = cexec("sh", "-c", "pwd; echo made > made.txt", opts=["--workspace", ws])
    assert r.stdout.strip() == "/workspace"
    assert (ws / "made.txt").read_text() == "made\n"
    # the default workspace is a sized, private tmpfs
    r = cexec("sh", "-c", "df -k /workspace | tail -1", opts=["--workspace-size", "8m"])
    assert r.stdout.split()[1] == "8192"


def test_tmp_is_sized(tmp_path):
    r = cexec("sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=32 2>&1; echo rc=$?",
              opts=["--tmp-size", "4m"])
    assert "No space left on device" in r.stdout
    r = cexec("sh", "-c", "df -k /tmp /dev/shm | tail -2", opts=["--tmp-size", "4m"])
    assert [l.split()[1] for l in r.stdout.splitlines()] == ["4096", "4096"]


def test_cwd_and_hostname():
    r = cexec("sh", "-c", "pwd; hostname", opts=["--cwd", "/tmp", "--hostname", "box"])
    assert r.stdout.split() == ["/tmp", "box"]


def test_stdin_stdout_passthrough():
    r = cexec("sh", "-c", "read x; echo got:$x; echo err >&2", input="hello\n")
    assert r.stdout == "got:hello\n"
    assert r.stderr == "err\n"


def test_reopen_stdout_to_a_file(tmp_path):
    """Reopening /dev/stdout must work when stdout is a host file (Landlock)."""
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        r = subprocess.run([CORDON, "exec", "--", "sh", "-c", "echo via-dev-stdout > /dev/stdout"],
                           stdout=f, stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "via-dev-stdout\n"


def test_status_json(tmp_path):
    r, st = status_json(tmp_path, "sh", "-c", "exit 3")
    assert r.returncode == 3
    assert st["exit_code"] == 3 and st["signal"] is None
    assert st["timed_out"] is False and st["oom_killed"] is False
    assert st["wall_ms"] >= 0 and st["cpu_ms"] >= 0 and st["mem_peak_bytes"] > 0
    p = st["protections"]
    assert p["userns"] is True and p["seccomp"] is True
    assert p["landlock_abi"] >= 1
    # Landlock part by part: what applied, and for the rest what holds instead
    abi = landlock_abi_in_use()
    ll = p["landlock"]
    assert ll["abi"] == p["landlock_abi"] == abi
    assert set(ll["missing"]) == landlock_missing(abi)
    assert ll["applied"] == [n for n, _ in LANDLOCK_PARTS if n not in ll["missing"]]
    assert all(isinstance(v, str) and v for v in ll["missing"].values())
    assert p["cgroup"] in ("v1", "v2")
    assert p["degraded"] == []
    r, st = status_json(tmp_path, "sh", "-c", "kill -INT $$")
    assert st["signal"] == 2 and st["exit_code"] == 130


def test_python_and_common_tools_work():
    r = cexec("python3", "-c", "import os, ssl, json, sqlite3, multiprocessing as m; "
              "p = m.Pool(2); print(sum(p.map(abs, [-1, -2]))); p.close(); print(os.cpu_count() > 0)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "True"]
    r = cexec("sh", "-c", "ls /usr/bin >/dev/null && awk 'BEGIN{print 1}' && sed --version >/dev/null && echo ok")
    assert r.stdout.split()[-1] == "ok"


def test_local_port_allows_a_loopback_server():
    code = ("import socket,threading\n"
            "s=socket.socket(); s.bind(('127.0.0.1',{p})); s.listen()\n"
            "t=threading.Thread(target=lambda: s.accept()[0].sendall(b'hi')); t.start()\n"
            "c=socket.create_connection(('127.0.0.1',{p})); print(c.recv(2).decode())\n")
    r = cexec("python3", "-c", code.format(p=8000), opts=["--local-port", "8000"])
    assert r.stdout.strip() == "hi", r.stderr
    r = cexec("python3", "-c", code.format(p=8001), opts=["--local-port", "8000"])
    if "net_tcp" in landlock_missing(landlock_abi_in_use()):
        # no Landlock TCP rules (ABI < 4): any port works, inside the
        # sandbox's own loopback-only network namespace (docs/exec.md)
        assert r.stdout.strip() == "hi", r.stderr
    else:
        assert r.returncode != 0 and "Permission denied" in r.stderr


def test_binds_the_sandbox_cannot_use_are_refused_up_front(tmp_path):
    """As root, the sandbox's user is host uid BASE+1000: a bound
    directory it cannot read (or write, for --rw and --workspace) used to
    fail inside with a bare "Permission denied". It is refused before the
    sandbox is made, naming the path, the uid and the fix."""
    d = tmp_path / "private"
    d.mkdir()
    (d / "f").write_text("x")
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o700)
    for opts, need in ((["--ro", f"{d}:/data"], "read and enter"),
                       (["--rw", f"{d}:/data"], "read, write and enter"),
                       (["--workspace", str(d)], "read, write and enter")):
        r = cexec("cat", "/data/f", opts=opts)
        assert r.returncode == 125, r.stderr
        assert str(d) in r.stderr and f"host uid {HOST_UID}" in r.stderr, r.stderr
        assert f"cannot {need} it" in r.stderr and "setfacl -m" in r.stderr, r.stderr
    os.chmod(d, 0o755)
    assert cexec("cat", "/data/f", opts=["--ro", f"{d}:/data"]).stdout == "x"
    r = cexec("true", opts=["--rw", f"{d}:/data"])  # still not writable for it
    assert r.returncode == 125 and "read, write and enter" in r.stderr
    os.chmod(d, 0o777)
    assert cexec("true", opts=["--rw", f"{d}:/data"]).returncode == 0


def test_profiles(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README").write_text("repo\n")
    os.chmod(repo, 0o777)
    r = cexec("sh", "-c", "pwd; cat README; touch x 2>&1; ls /repo", opts=["--profile", "repo-read", "--repo", repo])
    assert r.stdout.splitlines()[0:2] == ["/repo", "repo"]
    assert "Read-only" in r.stdout
    r = cexec("sh", "-c", "touch written", opts=["--profile", "repo-write", "--repo", repo])
    assert r.returncode == 0, r.stderr
    assert (repo / "written").exists()
    r = cexec("ls", "/repo", opts=["--profile", "offline"])
    assert r.returncode != 0
    r = cexec("true", opts=["--profile", "offline", "--repo", repo])
    assert r.returncode == 125 and "mounts no repository" in r.stderr


def test_git_works_in_the_bound_repository(tmp_path):
    """The README's example: the repository belongs to a host user the
    sandbox's user is not, which git calls dubious ownership. The repo
    profiles trust /repo, and only /repo."""
    repo = tmp_path / "repo"
    repo.mkdir()
    os.chmod(tmp_path, 0o755)
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "first commit"], check=True)
    subprocess.run(["chmod", "-R", "a+rwX", str(repo)], check=True)
    for profile in ("repo-read", "repo-write"):
        r = cexec("git", "log", "-1", "--format=%s", opts=["--profile", profile, "--repo", repo])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "first commit"
    # Only /repo is trusted: a repository elsewhere is still refused.
    r = cexec("git", "-C", "/elsewhere", "log", "-1",
              opts=["--profile", "repo-read", "--repo", repo, "--ro", f"{repo}:/elsewhere"])
    assert r.returncode != 0 and "dubious ownership" in r.stderr
