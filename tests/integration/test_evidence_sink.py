# SPDX-License-Identifier: Apache-2.0
"""serve --evidence-sink (docs/evidence.md): each run's signed pack lands
in DIR/WORKSPACE/RUN.evidence.tar.gz when the run ends, and verifies; a
directory others can write, an S3 URL and a relative path are refused at
start, naming what was wrong."""
import json
import os
import socket
import subprocess

from conftest import CORDON, run, wait_until
from test_run import make_agent
from test_serve import Server


def test_each_run_ends_with_its_pack_in_the_sink(tmp_path):
    sink = tmp_path / "sink"
    sink.mkdir(mode=0o700)
    sv = Server(tmp_path, extra=["--evidence-sink", f"file://{sink}"])
    owner = sv.cli("init").stdout.strip().splitlines()[-1]
    ag = make_agent(tmp_path, "proof", "echo proven > /workspace/out.txt; echo done\n")
    assert sv.cli("agent", "register", ag).returncode == 0
    sv.start()
    try:
        ids = []
        for n in range(2):
            st, j, _, _ = sv.req("POST", "/v1/runs", owner, {"agent": "proof", "input": {"n": n}})
            assert st in (200, 201, 202), j
            ids.append(j["id"])
        for rid in ids:
            assert sv.wait_final(owner, rid)["status"] == "succeeded"
        packs = [sink / "default" / f"{rid}.evidence.tar.gz" for rid in ids]
        assert wait_until(lambda: all(p.is_file() for p in packs), timeout=30), \
            list(sink.rglob("*"))
    finally:
        sv.stop(timeout=60)
    assert oct((sink / "default").stat().st_mode & 0o777) == "0o750"
    for rid, p in zip(ids, packs):
        r = run([CORDON, "evidence", "verify", "--json", str(p)], env=sv.env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["run_id"] == rid, r.stdout
    assert "2 packs exported, 0 failed, 0 dropped" in sv.log.read_text()
    # Nothing else in the sink: no temp file left beside the packs.
    assert sorted(x.name for x in (sink / "default").iterdir()) == \
        sorted(p.name for p in packs)


def test_a_swapped_sink_path_does_not_redirect_the_packs(tmp_path):
    """The sink is the directory checked at start, reached by the
    descriptor opened then: renaming it and putting a symlink to another
    directory at its path sends nothing there (review finding: packs were
    written by path)."""
    pub = tmp_path / "pub"
    pub.mkdir(mode=0o755)
    sink = pub / "sink"
    sink.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "default").mkdir(parents=True, mode=0o750)
    sv = Server(tmp_path, extra=["--evidence-sink", str(sink)])
    owner = sv.cli("init").stdout.strip().splitlines()[-1]
    ag = make_agent(tmp_path, "proof", "echo done\n")
    assert sv.cli("agent", "register", ag).returncode == 0
    sv.start()
    try:
        moved = pub / "sink.orig"
        sink.rename(moved)
        sink.symlink_to(elsewhere)
        st, j, _, _ = sv.req("POST", "/v1/runs", owner, {"agent": "proof"})
        assert st in (200, 201, 202), j
        rid = j["id"]
        assert sv.wait_final(owner, rid)["status"] == "succeeded"
        pack = moved / "default" / f"{rid}.evidence.tar.gz"
        assert wait_until(pack.is_file, timeout=30), list(tmp_path.rglob("*.gz"))
    finally:
        sv.stop(timeout=60)
    assert list((elsewhere / "default").iterdir()) == []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_sinks_are_refused_at_start(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state))
    for sink, why in (("s3://Bad_Bucket/prefix", "the bucket must be"),
                      ("relative/dir", "not an absolute path"),
                      ("https://example.test/x", "not a directory"),
                      (str(open_dir), "another user can change"),
                      (str(tmp_path / "absent"), "No such file")):
        r = subprocess.run([CORDON, "serve", "--listen", f"127.0.0.1:{free_port()}",
                            "--evidence-sink", sink],
                           env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 125, (sink, r.stderr)
        assert why in r.stderr and sink.split("://")[-1] in r.stderr, (sink, r.stderr)
