# SPDX-License-Identifier: Apache-2.0
"""The Debian package (make deb, scripts/make-deb; docs/deploy.md): built,
installed by dpkg into an empty root with its maintainer scripts run (a
busybox sh there), and used from there: the unit's ExecStart line as it is,
with the installed /etc/cordon/cordon.yaml as it is, runs in a namespace
that puts the package's /usr and /etc over this machine's and applies the
unit's hardening (UNIT_NS), and an agent runs through its API with the key
`cordon init` printed.

What is not done here: systemd itself does not run (this machine has no
systemd as PID 1, and the QEMU guest of run-in-vm boots a busybox init), so
Delegate=, KillMode= and the restart settings are not exercised; the unit
is read by systemd-analyze verify. It also passes on cgroup v2 in the QEMU
guest of run-in-vm (docs/deploy.md has the command), given $CORDON_DEB.

The package is $CORDON_DEB when set, else built by scripts/make-deb in
build-deb/ (about 30 s from nothing on 2 cores, a few seconds after; the
tests themselves take about 2 s), hence slow.
"""
import ctypes
import http.client
import os
import shlex
import shutil
import socket
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, run
from test_serve import GZ, Server, agent, tgz

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="dpkg --root and cordon serve's runs need root"),
]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    given = os.environ.get("CORDON_DEB")
    if given:
        return Path(given)
    dist = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, BUILD=str(ROOT / "build-deb"), DIST=str(dist))
    r = run([str(ROOT / "scripts" / "make-deb")], env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory):
    """The package installed by dpkg into an empty root, with a database of
    its own: its postinst runs chrooted there, in a busybox sh."""
    root = tmp_path_factory.mktemp("root")
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "bin", "tmp"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for tool in ("sh", "mkdir", "chown", "chmod"):
        (root / "bin" / tool).symlink_to("busybox")
    r = run(["dpkg", f"--root={root}", "--force-depends", "--log=/dev/null", "-i", str(deb)],
            timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def test_package_fields_and_layout(deb):
    fields = run(["dpkg-deb", "-f", str(deb)]).stdout
    assert "Package: cordon" in fields
    depends = [d for d in fields.splitlines() if d.startswith("Depends: ")][0]
    # From the binaries' shared libraries (dpkg-shlibdeps), not written by hand.
    for lib in ("libc6 (>=", "libyaml-0-2", "libjansson4", "libmicrohttpd12", "libsodium23",
                "libssl3"):
        assert lib in depends, depends
    files = {line.split()[-1] for line in run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines()}
    for f in ("./usr/bin/cordon", "./usr/libexec/cordon/cordon-net",
              "./usr/libexec/cordon/cordon-full", "./usr/libexec/cordon/cordon-api",
              "./lib/systemd/system/cordon-serve.service",
              "./lib/systemd/system/cordon-worker.service", "./etc/cordon/cordon.yaml",
              "./usr/share/man/man1/cordon-worker.1.gz",
              "./usr/share/man/man1/cordon.1.gz", "./usr/share/man/man1/cordon-run.1.gz",
              "./usr/share/man/man1/cordon-serve.1.gz", "./usr/share/man/man1/cordon-runs.1.gz"):
        assert f in files, f
    ctl = run(["dpkg-deb", "--ctrl-tarfile", str(deb)], text=False).stdout
    assert b"/etc/cordon/cordon.yaml" in ctl  # conffiles


def test_install_ran_postinst_and_the_unit_verifies(installed, tmp_path):
    st = (installed / "var/lib/cordon").stat()
    assert st.st_mode & 0o7777 == 0o700 and st.st_uid == 0
    status = (installed / "var/lib/dpkg/status").read_text()
    assert "Status: install ok installed" in status
    assert "/etc/cordon/cordon.yaml" in status  # recorded as a conffile
    # The units as shipped, but for ExecStart's binary, which is under this root.
    for name in ("cordon-serve.service", "cordon-worker.service"):
        unit = tmp_path / name
        unit.write_text((installed / "lib/systemd/system" / name).read_text()
                        .replace("/usr/bin/cordon", str(installed / "usr/bin/cordon")))
        r = run(["systemd-analyze", "verify", "--man=no", str(unit)])
        assert r.returncode == 0 and r.stderr.strip() == "", (name, r.stderr)
    # The worker reads the packaged config as it ships: every key of it known.
    r = run([str(installed / "usr/bin/cordon"), "worker", "--config",
             str(installed / "etc/cordon/cordon.yaml"), "--lease", "1"])
    assert r.returncode == 125 and "--lease: '1' is not a number from 2" in r.stderr, r.stderr
    r = run(["man", "-l", str(installed / "usr/share/man/man1/cordon-run.1.gz")],
            env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0 and "cordon-run - run an agent" in r.stdout, r.stderr


# The unit's [Service] settings this test knows: those it reproduces around
# the ExecStart line (UNIT_NS below), and those of supervision and cgroups
# that need systemd itself (docs/deploy.md). A setting added to the unit
# fails the test until it is added here.
EMULATED = {"ExecStart", "UMask", "StateDirectory", "StateDirectoryMode", "RuntimeDirectory",
            "RuntimeDirectoryMode", "ProtectSystem", "PrivateTmp", "ProtectHome",
            "NoNewPrivileges", "ProtectKernelModules", "RestrictSUIDSGID", "LockPersonality",
            "RestrictRealtime", "SystemCallArchitectures"}
NOT_EMULATED = {"Type", "KillMode", "TimeoutStopSec", "Restart", "RestartSec", "Delegate"}

# Run in a fresh mount and network namespace (unshare -m -n) by this
# machine's python3, then exec'd into the unit's ExecStart: the installed
# root's /usr and /etc over this machine's (overlayfs), its /var/lib, and
# the unit's settings as systemd applies them: StateDirectory= and
# RuntimeDirectory= (0700), PrivateTmp= (fresh /tmp, /var/tmp), ProtectHome=
# and ProtectKernelModules= (inaccessible /home, /root, /usr/lib/modules,
# no CAP_SYS_MODULE), ProtectSystem=strict (every mount read-only but
# /dev, /proc, /sys and those directories), NoNewPrivileges=, UMask=, and
# the seccomp filters of four more settings (python3-seccomp).
UNIT_NS = r"""
import os, subprocess, sys
root, argv = sys.argv[1], sys.argv[2:]
def mount(*a):
    subprocess.run(["mount", *a], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
mount("--make-rprivate", "/")
mount("-t", "overlay", "overlay", "-o", f"lowerdir={root}/usr:/usr", "/usr")
mount("-t", "overlay", "overlay", "-o", f"lowerdir={root}/etc:/etc", "/etc")
mount("--bind", f"{root}/var/lib", "/var/lib")
mount("--bind", "/var/lib/cordon", "/var/lib/cordon")
mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
os.mkdir("/run/cordon")
mount("-t", "tmpfs", "-o", "mode=0700", "tmpfs", "/run/cordon")
for d in ("/tmp", "/var/tmp"):
    mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", d)
for d in ("/home", "/root", "/usr/lib/modules"):
    if os.path.isdir(d):
        mount("-t", "tmpfs", "-o", "ro,mode=000", "tmpfs", d)
writable = ("/var/lib/cordon", "/run/cordon", "/tmp", "/var/tmp")
with open("/proc/self/mountinfo") as f:
    points = [line.split()[4] for line in f]
for p in points:
    p = p.encode().decode("unicode_escape")
    if p in writable or any(p == a or p.startswith(a + "/") for a in ("/dev", "/proc", "/sys")):
        continue
    subprocess.run(["mount", "-o", "remount,bind,ro", p], check=False,
                   stderr=subprocess.DEVNULL)
# RestrictSUIDSGID=, LockPersonality=, RestrictRealtime= and
# SystemCallArchitectures=native: seccomp filters like systemd's, inherited
# by cordon and every run (here personality() may set PER_LINUX only).
import errno, seccomp
f = seccomp.SyscallFilter(seccomp.ALLOW)  # the native architecture only
deny = seccomp.ERRNO(errno.EPERM)
f.add_rule(deny, "personality", seccomp.Arg(0, seccomp.NE, 0))
for policy in (1, 2, 6):  # SCHED_FIFO, SCHED_RR, SCHED_DEADLINE, alone or with RESET_ON_FORK
    for reset in (0, 0x40000000):
        f.add_rule(deny, "sched_setscheduler", seccomp.Arg(1, seccomp.EQ, policy | reset))
for bit in (0o4000, 0o2000):  # S_ISUID, S_ISGID
    for call, arg in (("chmod", 1), ("fchmod", 1), ("fchmodat", 2), ("mkdir", 1),
                      ("mkdirat", 2), ("mknod", 1), ("mknodat", 2), ("creat", 1)):
        f.add_rule(deny, call, seccomp.Arg(arg, seccomp.MASKED_EQ, bit, bit))
    for call, arg in (("open", 1), ("openat", 2)):
        f.add_rule(deny, call, seccomp.Arg(arg, seccomp.MASKED_EQ, os.O_CREAT, os.O_CREAT),
                   seccomp.Arg(arg + 1, seccomp.MASKED_EQ, bit, bit))
f.load()
os.umask(0o077)
os.execv("/usr/bin/setpriv", ["setpriv", "--no-new-privs", "--bounding-set", "-sys_module",
                              "--", *argv])
"""


def unit_settings(installed):
    text = (installed / "lib/systemd/system/cordon-serve.service").read_text()
    service = text.split("[Service]", 1)[1].split("\n[", 1)[0]
    return dict(line.split("=", 1) for line in service.splitlines()
                if line and not line.startswith("#"))


def in_unit_ns(installed, argv, **kw):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "CORDON_HOSTID_BASE": os.environ.get("CORDON_HOSTID_BASE", "")}
    return subprocess.Popen(["unshare", "--mount", "--net", "--", "/usr/bin/python3", "-c",
                             UNIT_NS, str(installed), *argv], env=env, **kw)


class NetnsConnection(http.client.HTTPConnection):
    """An HTTP connection made from inside the network namespace of
    NetnsConnection.pid: a thread of this process joins it (setns applies
    to the calling thread only) just to connect."""
    pid = None

    def connect(self):
        got = {}

        def join_and_connect():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    got["err"] = OSError(ctypes.get_errno(), "setns")
                    return
            finally:
                os.close(fd)
            try:
                got["sock"] = socket.create_connection((self.host, self.port), self.timeout)
            except OSError as e:
                got["err"] = e

        t = threading.Thread(target=join_and_connect)
        t.start()
        t.join()
        if "err" in got:
            raise got["err"]
        self.sock = got["sock"]


def test_installed_unit_serves_a_run(installed, tmp_path):
    """The installed unit's ExecStart, as it is (/usr/bin/cordon serve
    --config /etc/cordon/cordon.yaml), with the installed config as it is
    (state /var/lib/cordon, listen 127.0.0.1:8470 in a network namespace of
    its own) and the unit's hardening around it, runs an agent through the
    API with the key `cordon init` printed as root (its default state is
    /var/lib/cordon, as docs/deploy.md says)."""
    settings = unit_settings(installed)
    assert set(settings) <= EMULATED | NOT_EMULATED, set(settings) - EMULATED - NOT_EMULATED
    assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    argv = shlex.split(settings["ExecStart"])
    assert argv == ["/usr/bin/cordon", "serve", "--config", "/etc/cordon/cordon.yaml"], argv

    init = in_unit_ns(installed, ["/usr/bin/cordon", "init"], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    out, err = init.communicate(timeout=60)
    assert init.returncode == 0, err
    key = out.strip().splitlines()[-1]

    srv = Server(tmp_path)
    srv.state, srv.port = installed / "var/lib/cordon", 8470
    log = tmp_path / "serve.log"
    srv.proc = in_unit_ns(installed, argv, stderr=open(log, "w"))
    srv.connection = type("Conn", (NetnsConnection,), {"pid": srv.proc.pid})
    try:
        deadline = time.time() + 20
        while srv.health() is None:
            assert srv.proc.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.05)
        # The service runs the package's cordon-api (cordon found it as
        # ../libexec/cordon), with no_new_privs as NoNewPrivileges= sets.
        exe = Path(f"/proc/{srv.proc.pid}/exe")
        assert os.readlink(exe) == "/usr/libexec/cordon/cordon-api"
        assert exe.read_bytes() == (installed / "usr/libexec/cordon/cordon-api").read_bytes()
        status = Path(f"/proc/{srv.proc.pid}/status").read_text()
        assert "NoNewPrivs:\t1" in status, status

        hello = agent(tmp_path, "hello", 'echo "hi from the package"\n'
                      'echo \'{"ok": true}\' > /workspace/output.json\n')
        st, j, _, _ = srv.req("POST", "/v1/agents", key, raw=tgz(hello), headers=GZ)
        assert st in (200, 201), j
        st, j, _, _ = srv.req("POST", "/v1/runs", key, body={"agent": "hello"})
        assert st in (200, 201, 202), j
        final = srv.wait_final(key, j["id"], timeout=60)
        assert final["status"] == "succeeded", (final, log.read_text())
        st, _, out, _ = srv.req("GET", f"/v1/runs/{j['id']}/stdout", key)
        assert st == 200 and b"hi from the package" in out
    except BaseException:
        srv.stop(signal.SIGKILL)
        raise
    # SIGTERM, as systemctl stop sends: it drains and exits 0.
    assert srv.stop(signal.SIGTERM) == 0, log.read_text()


def test_config_unknown_key_is_refused_with_its_line(installed, tmp_path):
    conf = tmp_path / "cordon.yaml"
    text = (installed / "etc/cordon/cordon.yaml").read_text()
    conf.write_text(text.replace("  listen: 127.0.0.1:8470", "  listen: 127.0.0.1:8470\n  concurency: 4"))
    line = conf.read_text().splitlines().index("  concurency: 4") + 1
    conf.chmod(0o644)
    r = run([str(installed / "usr/bin/cordon"), "serve", "--config", str(conf)])
    assert r.returncode == 125
    assert f"{conf}:{line}: serve: unknown key 'concurency'" in r.stderr, r.stderr
    # A file others may write is refused before it is read.
    conf.write_text(text)
    conf.chmod(0o666)
    r = run([str(installed / "usr/bin/cordon"), "serve", "--config", str(conf)])
    assert r.returncode == 125 and "another user can change" in r.stderr, r.stderr
