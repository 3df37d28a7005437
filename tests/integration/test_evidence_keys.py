# SPDX-License-Identifier: Apache-2.0
"""cordon evidence, as a verifier uses it: export prints the public key a
verifier elsewhere needs (not only its id); export and verify count a pack's
files the same way and say what they count; verify --key takes a key id
only when it names a key the verifier already holds, never because the
pack's own signer has that id; and a pack re-signed by a key whose id was
made to look like the trusted one fails."""
import base64
import hashlib
import io
import json
import re
import tarfile

import pytest

from test_evidence import State, pae, shell_agent  # noqa: F401 (State: the fixtures' type)

crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
from cryptography.hazmat.primitives import serialization  # noqa: E402

PAYLOAD_TYPE = "application/vnd.in-toto+json"


@pytest.fixture
def st(tmp_path):
    return State(tmp_path)


@pytest.fixture
def exported(st, tmp_path):
    """A finished run, exported with its artifacts; export's --json report."""
    run_id, _ = st.run_agent(shell_agent(tmp_path))
    pack = tmp_path / "pack.tar.gz"
    r = st.cordon("evidence", "export", run_id, "-o", pack, "--artifacts", "--json")
    assert r.returncode == 0, r.stderr
    return run_id, pack, json.loads(r.stdout)


def raw_public(sk):
    return sk.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)


def resign(src, dst, sk, signer=None, env_keyid=None):
    """Re-signs a pack with sk, recomputing every digest, as an attacker
    with tarfile and their own key would. signer and env_keyid override
    what the statement's predicate and the envelope claim about the key."""
    pk = raw_public(sk)
    real = {"keyid": hashlib.sha256(pk).hexdigest(), "public_key": pk.hex()}
    with tarfile.open(src, "r:gz") as t:
        files = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    data = dict((m.name, d) for m, d in files)
    stmt = json.loads(data["statement.json"])
    stmt["predicate"]["signer"] = signer or real
    for s in stmt["subject"]:
        s["digest"]["sha256"] = hashlib.sha256(data[s["name"]]).hexdigest()
    body = (json.dumps(stmt, indent=2, sort_keys=True) + "\n").encode()
    env = {"payload": base64.b64encode(body).decode(), "payloadType": PAYLOAD_TYPE,
           "signatures": [{"keyid": env_keyid or real["keyid"],
                           "sig": base64.b64encode(sk.sign(pae(PAYLOAD_TYPE, body))).decode()}]}
    with tarfile.open(dst, "w:gz") as t:
        for m, d in files:
            if m.name == "statement.json":
                d = body
            elif m.name == "statement.sig":
                d = (json.dumps(env, indent=2, sort_keys=True) + "\n").encode()
            m.size = len(d)
            t.addfile(m, io.BytesIO(d))
    return dst


def lookalike_key(keyid, digits=3):
    """A fresh key whose id starts like keyid, as the abbreviated ids
    printed in reports (2e1589bf…) would show it."""
    while True:
        sk = crypto.Ed25519PrivateKey.generate()
        if hashlib.sha256(raw_public(sk)).hexdigest()[:digits] == keyid[:digits]:
            return sk


def test_export_prints_the_public_key(st, exported, tmp_path):
    run_id, pack, rep = exported
    key = json.loads(st.cordon("evidence", "key", "--json").stdout)
    assert rep["public_key"] == key["public_key"] and rep["keyid"] == key["keyid"]
    assert hashlib.sha256(bytes.fromhex(rep["public_key"])).hexdigest() == rep["keyid"]
    h = st.cordon("evidence", "export", run_id, "-o", tmp_path / "h.tar.gz")
    assert h.returncode == 0, h.stderr
    assert f"public key {key['public_key']}" in h.stdout
    assert f"--key {key['public_key']}" in h.stdout
    # What export printed is what a verifier elsewhere passes.
    other = State(tmp_path, "elsewhere")
    r, v = other.verify(pack, "--key", rep["public_key"])
    assert r.returncode == 0 and v["trusted"], r.stdout + r.stderr


def test_export_and_verify_count_the_same_files(st, exported):
    _, pack, rep = exported
    r, v = st.verify(pack)
    assert r.returncode == 0, r.stdout
    with tarfile.open(pack, "r:gz") as t:
        members = t.getmembers()
        subjects = json.loads(t.extractfile("statement.json").read())["subject"]
    # Every file in the pack, the statement's two included, and their bytes.
    assert rep["files"] == len(v["files"]) == len(members) == 10
    assert rep["bytes"] == v["bytes"] == sum(m.size for m in members)
    assert rep["signed_files"] == v["signed_files"] == len(subjects) == 8
    # Both say so in the same words.
    said = (f"10 files in the pack, {rep['bytes']} bytes (8 signed by the statement, "
            "plus statement.json and statement.sig)")
    h = st.cordon("evidence", "export", rep["run_id"], "-o", pack, "--artifacts", "--force")
    assert said in h.stdout, h.stdout
    assert said in st.cordon("evidence", "verify", pack).stdout


def test_key_id_of_a_key_held_here_is_accepted(st, exported):
    _, pack, rep = exported
    for given in (rep["keyid"], rep["keyid"].upper(), rep["public_key"]):
        r, v = st.verify(pack, "--key", given)
        assert r.returncode == 0 and v["trusted"] and v["keyid"] == rep["keyid"], given
    # The same from $CORDON_EVIDENCE_KEY, the deployment's other key source.
    env = {"CORDON_EVIDENCE_KEY": "22" * 32}
    envpack = st.tmp / "env.tar.gz"
    e = st.cordon("evidence", "export", rep["run_id"], "-o", envpack, "--json", env=env)
    assert e.returncode == 0, e.stderr
    r, v = st.verify(envpack, "--key", json.loads(e.stdout)["keyid"], env=env)
    assert r.returncode == 0 and v["trusted"]
    # ... but the file's key is not the one trusted then.
    r, v = st.verify(pack, "--key", rep["keyid"], env=env)
    assert r.returncode == 1 and not v["trusted"]


def test_key_id_alone_is_not_enough(st, exported, tmp_path):
    """Elsewhere, with no key of that id: the id is the hash of the key the
    pack carries, so matching it would trust whoever made the pack."""
    _, pack, rep = exported
    for other in (State(tmp_path, "nokey"), State(tmp_path, "otherkey")):
        if other.dir.name == "otherkey":
            assert other.cordon("evidence", "key").returncode == 0
        r, v = other.verify(pack, "--key", rep["keyid"])
        assert r.returncode == 1 and v["intact"] and not v["trusted"], r.stdout
        assert v["part"] == "statement.sig"
        assert "is the key id of the key that signed this pack, not a public key" in v["reason"]
        assert "an id alone cannot make a pack trusted" in v["reason"]
        assert "cordon evidence key" in v["reason"]
        h = other.cordon("evidence", "verify", "--key", rep["keyid"], pack)
        assert h.returncode == 1 and "UNTRUSTED" in h.stdout and "not a public key" in h.stdout
    # Not hex, or an abbreviated id: usage, and the message says what is taken.
    for given in ("zz" * 32, rep["keyid"][:8]):
        r = st.cordon("evidence", "verify", "--key", given, pack)
        assert r.returncode == 125 and "key id" in r.stderr and "64 hex digits" in r.stderr


def test_pack_resigned_by_a_lookalike_key_fails(st, exported, tmp_path):
    _, pack, rep = exported
    trusted_id, trusted_pk = rep["keyid"], rep["public_key"]
    sk = lookalike_key(trusted_id)
    fake_id = hashlib.sha256(raw_public(sk)).hexdigest()
    assert fake_id != trusted_id and fake_id[:3] == trusted_id[:3]
    elsewhere = State(tmp_path, "elsewhere")

    # 1. Re-signed consistently with the lookalike key: whole, but not ours.
    honest = resign(pack, tmp_path / "lookalike.tar.gz", sk)
    r, v = st.verify(honest, "--any-key")
    assert r.returncode == 0 and v["intact"] and not v["trusted"]
    for who, args in ((st, ("--key", trusted_id)), (st, ("--key", trusted_pk)), (st, ()),
                      (elsewhere, ("--key", trusted_pk))):
        r, v = who.verify(honest, *args)
        assert r.returncode == 1 and not v["trusted"] and v["keyid"] == fake_id, args
        assert "not the trusted key" in v["reason"]

    # 2. The statement and the envelope claim the trusted id (and key), but
    #    the signature is the lookalike's: the signature does not verify.
    for signer in ({"keyid": trusted_id, "public_key": raw_public(sk).hex()},
                   {"keyid": trusted_id, "public_key": trusted_pk}):
        forged = resign(pack, tmp_path / "forged.tar.gz", sk, signer=signer,
                        env_keyid=trusted_id)
        for who, args in ((st, ("--key", trusted_id)), (st, ()), (st, ("--any-key",)),
                          (elsewhere, ("--key", trusted_pk)),
                          (elsewhere, ("--key", trusted_id))):
            r, v = who.verify(forged, *args)
            assert r.returncode == 1 and not v["intact"] and not v["trusted"], (signer, args)
            assert v["part"] == "statement.sig"
            assert re.search(r"does not verify|not the key that signed", v["reason"]), v

    # 3. Elsewhere, given the lookalike pack's own signer id: not trusted.
    r, v = elsewhere.verify(honest, "--key", fake_id)
    assert r.returncode == 1 and not v["trusted"] and "not a public key" in v["reason"]


def test_key_id_with_a_local_key_that_cannot_be_loaded(st, exported):
    """The id names the state directory's key, but that key is refused (mode
    0644): the trusted key cannot be loaded (125), not "untrusted"; the
    public key given in full needs no local key."""
    _, pack, rep = exported
    (st.dir / "evidence.key").chmod(0o644)
    r = st.cordon("evidence", "verify", "--key", rep["keyid"], pack)
    assert r.returncode == 125, r.stdout + r.stderr
    assert "is the key id of the key that signed this pack" in r.stderr
    assert "cannot be loaded" in r.stderr and "wider than 0600" in r.stderr
    r, v = st.verify(pack, "--key", rep["public_key"])
    assert r.returncode == 0 and v["trusted"]
