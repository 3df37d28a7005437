# SPDX-License-Identifier: Apache-2.0
"""Blobs, run files and evidence packs on S3 (docs/state.md, "Blobs and run
files on S3"; docs/evidence.md, the sink), against s3rver (tests/s3, an
S3-compatible stand-in from npm) in a temporary directory. Every object
cordon writes is read back through the official AWS SDK for JavaScript
(tests/s3/objects.mjs), so they are real S3 objects; a damaged object is
refused on read, and wrong credentials stop a command with a message that
does not hold the secret."""
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, ROOT, run, wait_until
from test_run import make_agent
from test_serve import Server

S3DIR = ROOT / "tests" / "s3"
NODE = shutil.which("node")
BUCKET = "cordon-test"
SECRET = "S3RVER"  # s3rver's account

pytestmark = pytest.mark.skipif(
    not NODE or not (S3DIR / "node_modules" / "s3rver").is_dir(),
    reason="no node or tests/s3/node_modules (scripts/bootstrap installs them)")


@contextlib.contextmanager
def s3_service(data, addr="127.0.0.9"):
    """s3rver on addr, and in front of it the proxy that checks every
    request's SigV4 signature as S3 would (s3rver does not): cordon talks
    to the proxy, the AWS SDK to s3rver itself. The fleet test puts them
    on its bridge's address, where its workers' namespaces reach them."""
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind((addr, 0))
            ports.append(s.getsockname()[1])
    log = open(data.parent / "s3rver.log", "w")
    procs = [subprocess.Popen(
        [NODE, str(S3DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js"), "-d", str(data),
         "-a", addr, "-p", str(ports[0]), "-s", "--configure-bucket", BUCKET],
        stdout=log, stderr=subprocess.STDOUT)]
    procs.append(subprocess.Popen(
        [NODE, str(S3DIR / "sigv4-proxy.mjs"), addr, str(ports[1]), addr,
         str(ports[0]), SECRET], stdout=log, stderr=subprocess.STDOUT))

    def up():
        try:
            for p in ports:
                socket.create_connection((addr, p), timeout=0.2).close()
            return True
        except OSError:
            return False
    try:
        assert wait_until(up, timeout=15), open(log.name).read()
        creds = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": SECRET,
                 "AWS_REGION": "us-east-1"}
        yield {"env": dict(creds, CORDON_S3_ENDPOINT=f"http://{addr}:{ports[1]}"),
               "sdk": dict(creds, CORDON_S3_ENDPOINT=f"http://{addr}:{ports[0]}"),
               "dir": data / BUCKET}
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_service(tmp_path_factory.mktemp("s3rver")) as s:
        yield s


def sdk_objects(s3, prefix, match=None):
    """{key: {size, sha256, meta_sha256}} as the AWS SDK reads them (only
    the keys that contain match, if given)."""
    r = subprocess.run([NODE, "--no-warnings", str(S3DIR / "objects.mjs"), BUCKET, prefix,
                        *(["--match", match] if match else [])],
                       env=dict(os.environ, **s3["sdk"]), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return {o["key"]: o for o in map(json.loads, r.stdout.splitlines())}


def sdk_body(s3, key):
    r = subprocess.run([NODE, "--no-warnings", str(S3DIR / "objects.mjs"), BUCKET, key,
                        "--body"], env=dict(os.environ, **s3["sdk"]), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_serve_with_evidence_sink_and_blobs_on_s3(tmp_path, s3):
    """serve --evidence-sink s3://... --blobs s3://...: the run's pack is
    an S3 object that verifies; the run's files are objects too, and the
    API serves them from S3 once this host's copy is gone."""
    sv = Server(tmp_path, extra=["--evidence-sink", f"s3://{BUCKET}/evidence",
                                 "--blobs", f"s3://{BUCKET}/served"])
    sv.env.update(s3["env"])
    owner = sv.cli("init").stdout.strip().splitlines()[-1]
    ag = make_agent(tmp_path, "proof", "echo proven > /workspace/out.txt; echo done\n")
    assert sv.cli("agent", "register", ag).returncode == 0
    sv.start()
    try:
        st, j, _, _ = sv.req("POST", "/v1/runs", owner, {"agent": "proof"})
        assert st in (200, 201, 202), j
        rid = j["id"]
        assert sv.wait_final(owner, rid)["status"] == "succeeded"
        key = f"evidence/default/{rid}.evidence.tar.gz"
        assert wait_until(lambda: key in sdk_objects(s3, "evidence/"), timeout=20)
        index = f"served/runs/{rid}/index.json"
        assert wait_until(lambda: index in sdk_objects(s3, f"served/runs/{rid}/"), timeout=20)
        shutil.rmtree(sv.state / "runs" / rid)
        st, _, body, _ = sv.req("GET", f"/v1/runs/{rid}/stdout", owner)
        assert st == 200 and body == b"done\n", body
        assert (sv.state / "runs" / rid / "events.ndjson").is_file()
    finally:
        sv.stop(timeout=60)
    obj = sdk_objects(s3, "evidence/")[key]
    assert obj["sha256"] == obj["meta_sha256"]
    pack = tmp_path / "pack.tar.gz"
    pack.write_bytes(sdk_body(s3, key))
    r = run([CORDON, "evidence", "verify", "--json", str(pack)], env=sv.env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["run_id"] == rid
    assert "1 packs exported, 0 failed" in sv.log.read_text()


def test_blobs_and_run_files_on_s3(tmp_path, s3):
    """A run with --blobs: its blobs and files are S3 objects whose bytes
    are the local ones; with the local copies gone, they come back from S3
    checked (a 300 KB artifact crossed in parts of 64 KiB: multipart); a
    damaged object is refused with a clear error."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    url = f"s3://{BUCKET}/fleet"
    env = dict(os.environ, CORDON_STATE=str(state), CORDON_BLOBS=url,
               CORDON_S3_PART_SIZE="65536", **s3["env"])
    big = os.urandom(300 * 1024)
    ag = make_agent(tmp_path, "maker",
                    "mkdir -p /workspace/out\n"
                    "cp /agent/big.bin /workspace/out/big.gz\n"
                    "echo report > /workspace/out/report.txt\n"
                    "echo to-stdout; echo to-stderr >&2\n",
                    files={"big.bin": big})
    r = run([CORDON, "agent", "register", str(ag)], env=env)
    assert r.returncode == 0, r.stderr
    r = run([CORDON, "run", "--json", "maker"], env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    rid = json.loads(r.stdout.splitlines()[0])["run_id"]
    objs = sdk_objects(s3, "fleet/")
    for o in objs.values():
        assert o["sha256"] == o["meta_sha256"], o
    # Every local blob is an object named by its hash, with those bytes.
    blobs = [p for p in (state / "blobs").rglob("*") if p.is_file()]
    assert blobs
    for p in blobs:
        hexname = p.parent.name + p.name
        o = objs[f"fleet/blobs/{p.parent.name}/{p.name}"]
        assert o["sha256"] == hexname == sha(p.read_bytes())
    # Every run file is an object with the same bytes.
    rundir = state / "runs" / rid
    files = {str(p.relative_to(rundir)): p for p in rundir.rglob("*") if p.is_file()}
    for name in ("events.ndjson", "stdout", "stderr", "result.json", "artifacts/big.gz",
                 "artifacts/report.txt"):
        assert name in files, files
        assert objs[f"fleet/runs/{rid}/{name}"]["sha256"] == sha(files[name].read_bytes())
    assert objs[f"fleet/runs/{rid}/artifacts/big.gz"]["size"] == len(big)

    # This host loses its copies: the reader fetches them back, checked.
    shutil.rmtree(rundir)
    for d in ("blobs", "trees"):
        shutil.rmtree(state / d)
        (state / d).mkdir(mode=0o700)
    r = run([CORDON, "runs", "artifact", rid, "big.gz"], env=env, text=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == big
    r = run([CORDON, "runs", "output", rid], env=env)
    assert r.returncode == 0 and r.stdout == "to-stdout\n", r.stderr
    ex = tmp_path / "ex.tar.gz"
    r = run([CORDON, "evidence", "export", rid, "-o", str(ex)], env=env)
    assert r.returncode == 0, r.stderr
    assert run([CORDON, "evidence", "verify", str(ex)], env=env).returncode == 0
    # The agent's tree comes back from its blobs for a second run.
    r = run([CORDON, "run", "--json", "maker"], env=env, timeout=60)
    assert r.returncode == 0, r.stderr

    # A damaged object is refused on read, naming it.
    shutil.rmtree(rundir)
    victim = s3["dir"] / "fleet" / "runs" / rid / "stdout._S3rver_object"
    victim.write_bytes(b"to-stdout, changed\n")
    r = run([CORDON, "runs", "output", rid], env=env)
    assert r.returncode != 0
    assert "does not match its sha256" in r.stderr and f"runs/{rid}/stdout" in r.stderr, \
        r.stderr
    assert not rundir.exists()
    for d in ("blobs", "trees"):
        shutil.rmtree(state / d)
        (state / d).mkdir(mode=0o700)
    blob = next(p for p in (s3["dir"] / "fleet" / "blobs").rglob("*._S3rver_object")
                if p.stat().st_size == len(big))
    blob.write_bytes(b"x" + big[1:])
    r = run([CORDON, "run", "--json", "maker"], env=env, timeout=60)
    assert r.returncode != 0
    assert "does not match its sha256" in r.stdout + r.stderr, r.stdout + r.stderr


def test_wrong_credentials_fail_closed(tmp_path, s3):
    """A secret key that is not the account's, with or without a session
    token, and an unknown key id: refused at start, or on the first write,
    and no message holds the secret or the token."""
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    token = "FwoGZXIvYXdzEJr-session-token-" + secret[::-1]
    cases = (({"AWS_SECRET_ACCESS_KEY": secret}, "SignatureDoesNotMatch"),
             ({"AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token},
              "SignatureDoesNotMatch"),
             ({"AWS_ACCESS_KEY_ID": "AKIANOTAKEY"}, "InvalidAccessKeyId"))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for creds, code in cases:
        for flag in ("--blobs", "--evidence-sink"):
            env = dict(os.environ, CORDON_STATE=str(state), **dict(s3["env"], **creds))
            t0 = time.monotonic()
            r = subprocess.run([CORDON, "serve", "--listen", "127.0.0.1:1", flag,
                                f"s3://{BUCKET}/x"], env=env, capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 125, r.stderr
            assert code in r.stderr and "cannot be used" in r.stderr, r.stderr
            shown = r.stderr + r.stdout
            assert env["AWS_SECRET_ACCESS_KEY"] not in shown and token not in shown
            if "AWS_SESSION_TOKEN" in creds:  # the proxy echoed it: scrubbed
                assert "x-amz-security-token:***" in shown, shown
            assert time.monotonic() - t0 < 10
    # No bucket: said as such.
    r = subprocess.run([CORDON, "serve", "--listen", "127.0.0.1:1", "--blobs",
                        "s3://no-such-bucket/x"],
                       env=dict(os.environ, CORDON_STATE=str(state), **s3["env"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 125 and "NoSuchBucket" in r.stderr, r.stderr
    # cordon worker --blobs checks the bucket when it starts, as serve does.
    r = subprocess.run([CORDON, "worker", "--blobs", "s3://no-such-bucket/x"],
                       env=dict(os.environ, CORDON_STATE=str(state), **s3["env"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 125 and "NoSuchBucket" in r.stderr, r.stderr
    # A store that cannot write a blob through to S3 does not register.
    st2 = tmp_path / "st2"
    st2.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(st2), CORDON_BLOBS=f"s3://{BUCKET}/x",
               **dict(s3["env"], AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token))
    ag = make_agent(tmp_path, "a1", "echo hi\n")
    r = run([CORDON, "agent", "register", str(ag)], env=env)
    # (a HEAD's answer has no body to name the reason)
    assert r.returncode != 0 and "HTTP 403" in r.stderr, r.stderr
    assert secret not in r.stderr + r.stdout and token not in r.stderr + r.stdout
    # The blobs it stored here are written through when it is done again
    # with the right keys, though they are here already.
    env.update(s3["env"])
    env.pop("AWS_SESSION_TOKEN")
    r = run([CORDON, "agent", "register", str(ag)], env=env)
    assert r.returncode == 0, r.stderr
    objs = sdk_objects(s3, "x/blobs/")
    blobs = [p for p in (st2 / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) >= 3
    for p in blobs:
        assert objs[f"x/blobs/{p.parent.name}/{p.name}"]["sha256"] == sha(p.read_bytes())


def test_state_migrate_blobs(tmp_path, s3):
    """state migrate --blobs: a single host's blobs and run files copied to
    S3 and each read back checked; a second copy sends nothing; the state
    then works as a cache of the bucket."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state), **s3["env"])
    ag = make_agent(tmp_path, "local", "mkdir -p /workspace/out; echo kept > "
                    "/workspace/out/a.txt; echo hello\n")
    assert run([CORDON, "agent", "register", str(ag)], env=env).returncode == 0
    r = run([CORDON, "run", "--json", "local"], env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    rid = json.loads(r.stdout.splitlines()[0])["run_id"]
    url = f"s3://{BUCKET}/moved"
    r = run([CORDON, "state", "migrate", "--blobs", url, "--json"], env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    blobs = [p for p in (state / "blobs").rglob("*") if p.is_file()]
    files = [p for p in (state / "runs" / rid).rglob("*") if p.is_file()]
    assert rep["verified"] and rep["blobs"] == rep["sent"] == len(blobs) and rep["runs"] == 1
    assert rep["run_files"] == len(files)
    objs = sdk_objects(s3, "moved/")
    for p in blobs:
        assert objs[f"moved/blobs/{p.parent.name}/{p.name}"]["sha256"] == sha(p.read_bytes())
    for p in files:
        rel = p.relative_to(state / "runs" / rid)
        assert objs[f"moved/runs/{rid}/{rel}"]["sha256"] == sha(p.read_bytes())
    r = run([CORDON, "state", "migrate", "--blobs", url, "--json"], env=env, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["sent"] == 0, r.stderr
    shutil.rmtree(state / "runs" / rid)
    r = run([CORDON, "runs", "output", rid], env=dict(env, CORDON_BLOBS=url))
    assert r.returncode == 0 and r.stdout == "hello\n", r.stderr


def test_a_5xx_is_tried_again(tmp_path, s3):
    """The proxy answers the first try of every request below flaky/ with
    503 SlowDown: serve's check of its sink, and the pack put there, go
    through on the second try."""
    sv = Server(tmp_path, extra=["--evidence-sink", f"s3://{BUCKET}/flaky"])
    sv.env.update(s3["env"])
    owner = sv.cli("init").stdout.strip().splitlines()[-1]
    ag = make_agent(tmp_path, "quick", "echo ok\n")
    assert sv.cli("agent", "register", ag).returncode == 0
    sv.start()
    try:
        st, j, _, _ = sv.req("POST", "/v1/runs", owner, {"agent": "quick"})
        assert st in (200, 201, 202), j
        rid = j["id"]
        assert sv.wait_final(owner, rid)["status"] == "succeeded"
        key = f"flaky/default/{rid}.evidence.tar.gz"
        assert wait_until(lambda: key in sdk_objects(s3, "flaky/"), timeout=20)
    finally:
        sv.stop(timeout=60)
    assert "1 packs exported, 0 failed" in sv.log.read_text()


def test_pruning_removes_a_runs_objects(tmp_path, s3):
    """Pruning by age removes what a run left on S3 as well: a kind's files
    (the index rewritten without them first), then, with the record, the
    rest and the index. Blobs stay (docs/retention.md says why)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, CORDON_STATE=str(state), CORDON_BLOBS=f"s3://{BUCKET}/pruned",
               **s3["env"])
    ag = make_agent(tmp_path, "leaver", "mkdir -p /workspace/out\n"
                    "echo kept > /workspace/out/art.txt; echo out; echo err >&2\n")
    assert run([CORDON, "agent", "register", str(ag)], env=env).returncode == 0
    r = run([CORDON, "run", "--json", "leaver"], env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    rid = json.loads(r.stdout.splitlines()[0])["run_id"]
    pre = f"pruned/runs/{rid}/"
    before = set(sdk_objects(s3, pre))
    assert {pre + n for n in ("stdout", "stderr", "artifacts/art.txt", "events.ndjson",
                              "index.json")} <= before, before
    blobs = set(sdk_objects(s3, "pruned/blobs/"))
    time.sleep(1.2)
    # files: stdout, stderr and steps go, here and on S3; the index says so
    assert run([CORDON, "retention", "set", "--operator", "files=1s"], env=env).returncode == 0
    r = run([CORDON, "prune", "--json"], env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["runs"]["files"] == 1, r.stdout + r.stderr
    after = set(sdk_objects(s3, pre))
    assert after == before - {pre + "stdout", pre + "stderr", pre + "steps.json"}, after
    index = json.loads(sdk_body(s3, pre + "index.json"))
    assert {f["name"] for f in index["files"]} == {k[len(pre):] for k in after} - {"index.json"}
    # another host, without the run's files, pulls what is left and no more
    shutil.rmtree(state / "runs" / rid)
    r = run([CORDON, "runs", "artifact", rid, "art.txt"], env=env)
    assert r.returncode == 0 and r.stdout == "kept\n", r.stderr
    # records: the rest of the run, and its index, go with the record
    assert run([CORDON, "retention", "set", "--operator", "records=1s"], env=env).returncode == 0
    r = run([CORDON, "prune", "--json"], env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["runs"]["records"] == 1, r.stdout + r.stderr
    assert sdk_objects(s3, pre) == {}
    assert set(sdk_objects(s3, "pruned/blobs/")) == blobs
