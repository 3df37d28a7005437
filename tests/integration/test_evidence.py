# SPDX-License-Identifier: Apache-2.0
"""cordon evidence export|verify|key against the real binary: a pack of a
real run verifies; any change made with Python's tarfile (a byte in a part,
a file dropped or added, a path escaping, a link) is caught and the part is
named; another signer is untrusted; and with a network run the audit log's
head is checked against the statement and result.json."""
import base64
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from conftest import CORDON, run
from upstream import Upstream

AGENT_SH = r'''#!/bin/sh
set -eu
echo '{"name": "write report"}' > "$CORDON_STEPS"
printf '# report\nall good\n' > /workspace/out/report.md
echo '{"done": true}' > /workspace/output.json
echo "finished"
'''

NET_CLIENT = r'''
import json, urllib.request
url = json.load(open("/workspace/input.json"))["url"]
out = {}
for i in range(2):
    with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"),
                                timeout=10) as r:
        out[str(i)] = r.status
json.dump(out, open("/workspace/output.json", "w"))
'''


class State:
    def __init__(self, tmp_path, name="state"):
        self.tmp = tmp_path
        self.dir = tmp_path / name
        self.dir.mkdir(mode=0o700)

    def cordon(self, *args, timeout=60, env=None):
        e = dict(os.environ, CORDON_STATE=str(self.dir))
        e.pop("CORDON_EVIDENCE_KEY", None)
        e.update(env or {})
        return run([CORDON, *args], timeout=timeout, env=e)

    def run_agent(self, agent_dir, *extra, input_obj=None):
        inp = self.tmp / "input.json"
        inp.write_text(json.dumps(input_obj or {}))
        r = self.cordon("run", "--json", "-i", inp, *extra, agent_dir, timeout=120)
        events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        fin = [e for e in events if e["type"] == "run.finished"]
        assert fin, r.stdout + r.stderr
        return fin[-1]["run_id"], Path(fin[-1]["run_dir"])

    def export(self, run_id, out, *extra):
        return self.cordon("evidence", "export", run_id, "-o", out, *extra)

    def verify(self, pack, *extra, env=None):
        r = self.cordon("evidence", "verify", "--json", pack, *extra, env=env)
        return r, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else None)


@pytest.fixture
def st(tmp_path):
    return State(tmp_path)


def shell_agent(tmp_path):
    d = tmp_path / "agent"
    d.mkdir()
    (d / "agent.json").write_text(json.dumps({
        "name": "reporter", "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"]}))
    (d / "run.sh").write_text(AGENT_SH)
    return d


@pytest.fixture
def packed(st, tmp_path):
    """A finished run of the shell agent, exported with its artifacts."""
    run_id, run_dir = st.run_agent(shell_agent(tmp_path))
    pack = tmp_path / "pack.tar.gz"
    r = st.export(run_id, pack, "--artifacts")
    assert r.returncode == 0, r.stderr
    return run_id, run_dir, pack


def rewrite(src, dst, change=None, drop=(), add=()):
    """Copies a pack member by member, as a person with tarfile would."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            if m.name in drop:
                continue
            data = tin.extractfile(m).read()
            if change and m.name in change:
                data = change[m.name](data)
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
        for info, data in add:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)


def member(name, data=b"", mtime=0, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    info.mtime = mtime
    info.type = kind
    info.linkname = link
    return info, (data if kind == tarfile.REGTYPE else None)


def flip(data, old=None):
    if old is None:
        return bytes([data[0] ^ 0x20]) + data[1:]
    assert old in data
    return data.replace(old, old.upper(), 1)


def test_round_trip(st, packed, tmp_path):
    run_id, run_dir, pack = packed
    r, rep = st.verify(pack)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rep["ok"] and rep["intact"] and rep["trusted"]
    assert rep["run_id"] == run_id and rep["status"] == "succeeded"
    assert rep["audit"] is None and rep["artifacts_included"]
    names = [f["name"] for f in rep["files"]]
    assert names == ["record.json", "result.json", "events.ndjson", "steps.json", "stdout",
                     "stderr", "artifacts.json", "artifacts/report.md", "statement.json",
                     "statement.sig"]
    # The files are the run directory's, byte for byte.
    with tarfile.open(pack, "r:gz") as t:
        for n in ("result.json", "events.ndjson", "steps.json", "stdout"):
            assert t.extractfile(n).read() == (run_dir / n).read_bytes(), n
        assert t.extractfile("artifacts/report.md").read() == b"# report\nall good\n"
        manifest = json.loads(t.extractfile("artifacts.json").read())
        assert manifest == json.loads((run_dir / "result.json").read_text())["artifacts"]
        stmt = json.loads(t.extractfile("statement.json").read())
        assert stmt["_type"] == "https://in-toto.io/Statement/v1"
        assert stmt["predicateType"] == "https://cordon.dev/evidence/v1"
        for s in stmt["subject"]:
            data = t.extractfile(s["name"]).read()
            assert hashlib.sha256(data).hexdigest() == s["digest"]["sha256"]
        record = json.loads(t.extractfile("record.json").read())
        assert record["id"] == run_id and "input_json" not in record
    # The key: created on first use, 0600; `key` names the signer.
    key = st.dir / "evidence.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 32
    k = st.cordon("evidence", "key", "--json")
    assert k.returncode == 0
    assert json.loads(k.stdout)["keyid"] == rep["keyid"]
    # Human output.
    h = st.cordon("evidence", "verify", pack)
    assert h.returncode == 0 and "intact, signed by the trusted key" in h.stdout


def test_output_is_not_replaced_without_force(st, packed):
    run_id, _, pack = packed
    before = pack.read_bytes()
    r = st.export(run_id, pack)
    assert r.returncode == 125 and "--force" in r.stderr
    assert pack.read_bytes() == before
    r = st.export(run_id, pack, "--force", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["artifacts_included"] is False
    assert st.verify(pack)[0].returncode == 0
    # No temp files left beside it.
    assert [p.name for p in pack.parent.iterdir() if p.name.startswith(".")] == []


def sig_flip(env_bytes):
    env = json.loads(env_bytes)
    raw = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    raw[0] ^= 1
    env["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    return (json.dumps(env, indent=2, sort_keys=True) + "\n").encode()


CASES = [
    ("events", dict(change={"events.ndjson": lambda d: flip(d, b"run.created")}),
     "events.ndjson", "the file was changed"),
    ("result", dict(change={"result.json": lambda d: flip(d, b"succeeded")}), "result.json",
     "the file was changed"),
    ("artifact", dict(change={"artifacts/report.md": flip}), "artifacts/report.md",
     "the file was changed"),
    ("stdout", dict(change={"stdout": flip}), "stdout", "the file was changed"),
    ("manifest", dict(change={"artifacts.json": lambda d: flip(d, b"report")}),
     "artifacts.json", "the file was changed"),
    ("statement", dict(change={"statement.json": lambda d: flip(d, b"succeeded")}),
     "statement.json", "differs from the payload"),
    ("signature", dict(change={"statement.sig": lambda d: sig_flip(d)}), "statement.sig",
     "does not verify"),
    ("envelope", dict(change={"statement.sig": lambda d: d.replace(b"\n", b" ", 1)}),
     "statement.sig", "not in the form"),
    ("dropped", dict(drop={"stdout"}), "stdout", "removed"),
    ("dropped-artifact", dict(drop={"artifacts/report.md"}), "artifacts/report.md", "removed"),
    ("unsigned", dict(drop={"statement.sig"}), "statement.sig", "not signed"),
]


@pytest.mark.parametrize("name,how,part,why", CASES, ids=[c[0] for c in CASES])
def test_tampered_pack_is_refused(st, packed, tmp_path, name, how, part, why):
    _, _, pack = packed
    bad = tmp_path / f"{name}.tar.gz"
    rewrite(pack, bad, **how)
    r, rep = st.verify(bad)
    assert r.returncode == 1, r.stdout + r.stderr
    assert not rep["ok"] and not rep["intact"]
    assert rep["part"] == part and why in rep["reason"], rep
    h = st.cordon("evidence", "verify", bad)
    assert h.returncode == 1 and f"BAD: {part}:" in h.stdout


def test_untouched_rewrite_still_verifies(st, packed, tmp_path):
    # The copy helper itself changes nothing that counts.
    _, _, pack = packed
    same = tmp_path / "same.tar.gz"
    rewrite(pack, same)
    r, rep = st.verify(same)
    assert r.returncode == 0, rep


def test_added_entries_are_refused(st, packed, tmp_path):
    _, _, pack = packed
    with tarfile.open(pack, "r:gz") as t:
        mtime = t.getmember("record.json").mtime
    cases = [
        (member("artifacts/extra.md", b"more", mtime), "artifacts/extra.md", "not in the signed"),
        (member("notes.txt", b"hi", mtime), "notes.txt", "not a file"),
        (member("../evil.sh", b"rm -rf /", mtime), "../evil.sh", '".."'),
        (member("/etc/cron.d/x", b"* * * * *", mtime), "/etc/cron.d/x", "absolute"),
        (member("stdout", b"forged\n", mtime), "stdout", "two entries"),
        (member("artifacts/link.md", kind=tarfile.SYMTYPE, link="/etc/shadow", mtime=mtime),
         "artifacts/link.md", "symbolic link"),
        (member("artifacts/hard.md", kind=tarfile.LNKTYPE, link="stdout", mtime=mtime),
         "artifacts/hard.md", "hard link"),
    ]
    for i, (add, part, why) in enumerate(cases):
        bad = tmp_path / f"add{i}.tar.gz"
        rewrite(pack, bad, add=[add])
        r, rep = st.verify(bad)
        assert r.returncode == 1, (part, r.stdout, r.stderr)
        assert rep["part"] == part and why in rep["reason"], rep


def test_trailing_data_is_refused(st, packed, tmp_path):
    _, _, pack = packed
    bad = tmp_path / "trailing.tar.gz"
    bad.write_bytes(pack.read_bytes() + b"hidden")
    r, rep = st.verify(bad)
    assert r.returncode == 1 and rep["part"] == "archive"
    # Not a pack at all.
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"just some text\n")
    r, rep = st.verify(junk)
    assert r.returncode == 1 and rep["part"] == "archive"


def test_trust(st, packed, tmp_path):
    run_id, _, pack = packed
    other = State(tmp_path, "other")
    k = other.cordon("evidence", "key", "--json")
    assert k.returncode == 0
    other_pk = json.loads(k.stdout)["public_key"]
    mine = json.loads(st.cordon("evidence", "key", "--json").stdout)["public_key"]
    # Another deployment's key: untrusted, and said so.
    r, rep = other.verify(pack)
    assert r.returncode == 1 and rep["intact"] and not rep["trusted"]
    assert rep["part"] == "statement.sig" and "not the trusted key" in rep["reason"]
    assert "UNTRUSTED" in other.cordon("evidence", "verify", pack).stdout
    r, rep = st.verify(pack, "--key", other_pk)
    assert r.returncode == 1 and not rep["trusted"]
    # The right key, given explicitly, from anywhere.
    r, rep = other.verify(pack, "--key", mine)
    assert r.returncode == 0 and rep["trusted"]
    # --any-key: integrity only.
    r, rep = other.verify(pack, "--any-key")
    assert r.returncode == 0 and rep["intact"] and not rep["trusted"]
    # A state without a key: nothing is trusted, and verify makes no key.
    empty = State(tmp_path, "empty")
    r, rep = empty.verify(pack)
    assert r.returncode == 1 and "no trusted key" in rep["reason"]
    assert not (empty.dir / "evidence.key").exists()
    # A key from the environment replaces the file's, for export and verify.
    env = {"CORDON_EVIDENCE_KEY": "11" * 32}
    k = st.cordon("evidence", "key", "--json", env=env)
    assert json.loads(k.stdout)["source"] == "env"
    r, rep = st.verify(pack, env=env)  # made with the file's key
    assert r.returncode == 1 and not rep["trusted"]
    envpack = tmp_path / "env.tar.gz"
    assert st.cordon("evidence", "export", run_id, "-o", envpack, env=env).returncode == 0
    assert st.verify(envpack, env=env)[0].returncode == 0
    assert st.verify(envpack)[0].returncode == 1
    bad_env = st.cordon("evidence", "key", env={"CORDON_EVIDENCE_KEY": "oops"})
    assert bad_env.returncode == 125 and "oops" not in bad_env.stderr


def test_key_file_rules(st, packed):
    run_id, _, pack = packed
    key = st.dir / "evidence.key"
    key.chmod(0o644)
    r = st.export(run_id, pack, "--force")
    assert r.returncode == 125 and "wider than 0600" in r.stderr
    r, _ = st.verify(pack)
    assert r.returncode == 125
    key.chmod(0o600)
    real = st.tmp / "real.key"
    key.rename(real)
    key.symlink_to(real)
    r = st.export(run_id, pack, "--force")
    assert r.returncode == 125 and "symbolic link" in r.stderr


def test_export_refuses_a_changed_run_dir(st, packed):
    run_id, run_dir, pack = packed
    res = run_dir / "result.json"
    res.write_text(res.read_text().replace('"succeeded"', '"failed"'))
    r = st.export(run_id, pack, "--force")
    assert r.returncode == 125 and "result.json" in r.stderr


def test_usage(st, tmp_path):
    r = st.cordon("evidence", "--help")
    assert r.returncode == 0 and "cordon evidence export RUN" in r.stdout
    for args in (["evidence"], ["evidence", "export"], ["evidence", "verify"],
                 ["evidence", "frob", "x"], ["evidence", "verify", "a", "b"]):
        r = st.cordon(*args)
        assert r.returncode == 125, args
    r = st.cordon("evidence", "export", "run_nope")
    assert r.returncode == 125 and "no run run_nope" in r.stderr
    r = st.cordon("evidence", "verify", tmp_path / "missing.tar.gz")
    assert r.returncode == 125 and r.stderr.startswith("cordon: ")
    r = st.cordon("evidence", "export", "x", "--key", "00")
    assert r.returncode == 125 and "--key" in r.stderr
    r = st.cordon("evidence", "verify", "x", "--key", "00")
    assert r.returncode == 125 and "--key" in r.stderr


# --------------------------------------------------------------- network


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def net_run(st, tmp_path, upstream):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 api.test\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nenforce: true\ndomains:\n"
                      f"  - name: api.test\n    ports: [{upstream.port}]\n")
    d = tmp_path / "net"
    d.mkdir()
    (d / "agent.json").write_text(json.dumps({
        "name": "netagent", "version": "1", "entrypoint": ["python3", "/agent/main.py"],
        "profile": "deployment", "egress": {"domains": ["api.test"]}}))
    (d / "main.py").write_text(NET_CLIENT)
    return st.run_agent(d, "--policy", policy, "--hosts", hosts, "--allow-private",
                        f"127.0.0.1:{upstream.port}",
                        input_obj={"url": f"http://api.test:{upstream.port}/x"})


def pae(payload_type, body):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def test_network_run_audit_head(st, tmp_path, upstream):
    run_id, run_dir = net_run(st, tmp_path, upstream)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["audit"]["records"] == 2, result
    pack = tmp_path / "net.tar.gz"
    r = st.export(run_id, pack)
    assert r.returncode == 0, r.stderr
    r, rep = st.verify(pack)
    assert r.returncode == 0, rep
    assert rep["audit"] == {"head": result["audit"]["head"], "records": 2, "anchored": True}

    # A line removed from the end of the audit log: the file changed.
    def cut_last(data):
        return b"".join(data.splitlines(keepends=True)[:-1])

    bad = tmp_path / "cut.tar.gz"
    rewrite(pack, bad, change={"audit.jsonl": cut_last})
    r, rep = st.verify(bad)
    assert r.returncode == 1 and rep["part"] == "audit.jsonl"

    # The same cut, re-signed by someone else with a consistent statement:
    # --any-key accepts other signers, but the chain's end is checked against
    # the head recorded in the statement and in result.json.
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    with tarfile.open(pack, "r:gz") as t:
        files = {m.name: (m, t.extractfile(m).read()) for m in t.getmembers()}
    env = json.loads(files["statement.sig"][1])
    stmt_bytes = base64.b64decode(env["payload"])
    assert stmt_bytes == files["statement.json"][1]
    # The signature verifies independently of cordon (DSSE PAE, Ed25519).
    pub = bytes.fromhex(json.loads(st.cordon("evidence", "key", "--json").stdout)["public_key"])
    crypto.Ed25519PublicKey.from_public_bytes(pub).verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae(env["payloadType"], stmt_bytes))
    assert env["signatures"][0]["keyid"] == hashlib.sha256(pub).hexdigest()

    def resign(files, stmt):
        sk = crypto.Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives import serialization
        pk = sk.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)
        stmt["predicate"]["signer"] = {"keyid": hashlib.sha256(pk).hexdigest(),
                                       "public_key": pk.hex()}
        for s in stmt["subject"]:
            s["digest"]["sha256"] = hashlib.sha256(files[s["name"]][1]).hexdigest()
        body = (json.dumps(stmt, indent=2, sort_keys=True) + "\n").encode()
        sig = sk.sign(pae("application/vnd.in-toto+json", body))
        envelope = {"payload": base64.b64encode(body).decode(),
                    "payloadType": "application/vnd.in-toto+json",
                    "signatures": [{"keyid": hashlib.sha256(pk).hexdigest(),
                                    "sig": base64.b64encode(sig).decode()}]}
        out = tmp_path / "resigned.tar.gz"
        with tarfile.open(out, "w:gz") as t:
            for name, (m, data) in files.items():
                if name == "statement.json":
                    data = body
                elif name == "statement.sig":
                    data = (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))
        return out

    stmt = json.loads(stmt_bytes)
    ok = resign(dict(files), json.loads(stmt_bytes))
    r, rep = st.verify(ok, "--any-key")
    assert r.returncode == 0 and not rep["trusted"], rep
    r, rep = st.verify(ok)
    assert r.returncode == 1 and rep["intact"] and not rep["trusted"]

    m, data = files["audit.jsonl"]
    cut = dict(files)
    cut["audit.jsonl"] = (m, cut_last(data))
    r, rep = st.verify(resign(cut, json.loads(stmt_bytes)), "--any-key")
    assert r.returncode == 1 and rep["part"] == "audit.jsonl"
    assert "removed from the end" in rep["reason"]

    # Cut, with the statement's head moved to match: result.json still
    # holds the head from the end of the run.
    head = [json.loads(l)["hash"] for l in cut["audit.jsonl"][1].splitlines()][-1]
    stmt["predicate"]["audit"] = {"head": head, "records": 1}
    r, rep = st.verify(resign(cut, stmt), "--any-key")
    assert r.returncode == 1 and rep["part"] == "result.json" and "audit head" in rep["reason"]


CRASH_CLIENT = r'''
import json, time, urllib.request
url = json.load(open("/workspace/input.json"))["url"]
for i in range(3):
    urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=10)
open("/workspace/done", "w").write("1")
time.sleep(60)
'''


def crashed_net_run(st, tmp_path, upstream):
    """A run with three audited requests whose supervisor is SIGKILLed: no
    result.json, so nothing in the run's directory says where the log ends."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 api.test\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nenforce: true\ndomains:\n"
                      f"  - name: api.test\n    ports: [{upstream.port}]\n")
    d = tmp_path / "crash"
    d.mkdir()
    (d / "agent.json").write_text(json.dumps({
        "name": "crasher", "version": "1", "entrypoint": ["python3", "/agent/main.py"],
        "profile": "deployment", "egress": {"domains": ["api.test"]}}))
    (d / "main.py").write_text(CRASH_CLIENT)
    inp = tmp_path / "input.json"
    inp.write_text(json.dumps({"url": f"http://api.test:{upstream.port}/x"}))
    import signal
    import subprocess
    p = subprocess.Popen([CORDON, "run", "--json", "--policy", policy, "--hosts", hosts,
                          "--allow-private", f"127.0.0.1:{upstream.port}", "-i", inp, d],
                         env=dict(os.environ, CORDON_STATE=str(st.dir)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from conftest import wait_until
    logs = lambda: list(st.dir.glob("runs/*/audit.jsonl"))
    assert wait_until(lambda: logs() and len(logs()[0].read_text().splitlines()) >= 3, timeout=30)
    p.send_signal(signal.SIGKILL)
    p.wait()
    audit = logs()[0]
    run_id = audit.parent.name
    # Recovery closes the record (the next state command runs it).
    assert wait_until(lambda: json.loads(st.cordon("runs", "show", "--json", run_id).stdout)
                      ["status"] == "error", timeout=20)
    return run_id, audit


def test_truncated_audit_log_of_a_crashed_run_is_refused(st, tmp_path, upstream):
    """The chain alone verifies when lines are cut from its end; the head the
    run anchored in its record as it wrote them does not."""
    run_id, audit = crashed_net_run(st, tmp_path, upstream)
    lines = audit.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    audit.write_text("".join(lines[:-1]))
    assert run([CORDON, "audit", "verify", audit]).returncode == 0  # still a valid chain
    r = st.export(run_id, tmp_path / "cut.tar.gz")
    assert r.returncode != 0 and "cut off its end" in r.stderr, r.stderr
    # Whole, it exports, anchored.
    audit.write_text("".join(lines))
    r = st.export(run_id, tmp_path / "whole.tar.gz", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["audit_anchored"] is True


def test_a_log_without_an_anchor_is_called_unanchored(st, tmp_path, upstream):
    """A run recorded before anchors existed: the pack says so, and verify
    says so, instead of calling the log intact."""
    import sqlite3
    run_id, audit = crashed_net_run(st, tmp_path, upstream)
    db = sqlite3.connect(st.dir / "cordon.db")
    db.execute("UPDATE runs SET audit_head = '', audit_records = 0 WHERE id = ?", (run_id,))
    db.commit()
    db.close()
    pack = tmp_path / "old.tar.gz"
    r = st.export(run_id, pack)
    assert r.returncode == 0, r.stderr
    assert "unanchored" in r.stdout
    r = st.cordon("evidence", "verify", pack, "--any-key")
    assert "UNANCHORED" in r.stdout, r.stdout
    r, rep = st.verify(pack, "--any-key")
    assert rep["audit"]["anchored"] is False


def test_output_changed_after_the_run_is_refused(st, tmp_path):
    run_id, run_dir = st.run_agent(shell_agent(tmp_path))
    (run_dir / "stdout").write_text("something else\n")
    r = st.export(run_id, tmp_path / "p.tar.gz")
    assert r.returncode != 0 and "changed after the run" in r.stderr, r.stderr
