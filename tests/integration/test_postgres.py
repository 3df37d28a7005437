# SPDX-License-Identifier: Apache-2.0
"""The Postgres backend through the real binary: with CORDON_DATABASE_URL
(or cordon serve --database) the registry, run records, secrets and API
keys go to Postgres, read back from there with psql, and no cordon.db is
made. The server is a throwaway one, started the way the unit tests start
theirs (tests/pg/with-postgres: initdb in a temp directory, a unix socket
only). Without Postgres's binaries the tests skip, or fail under
CORDON_REQUIRE_PG=1.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, ROOT, run
from test_serve import Server

WITH_POSTGRES = ROOT / "tests" / "pg" / "with-postgres"
VALUE = "pg-secret-value-4242-abcdef"


@pytest.fixture(scope="module")
def pg():
    """(url, psql): a server that lives for this file's tests."""
    p = subprocess.Popen(
        [str(WITH_POSTGRES), "sh", "-c",
         'echo "$CORDON_DATABASE_URL"; echo "$CORDON_PG_BIN"; exec cat >/dev/null'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = p.stdout.readline().strip()
    bindir = p.stdout.readline().strip()
    if not url:
        rc = p.wait(timeout=60)
        err = p.stderr.read()
        if rc == 77:
            pytest.skip(err.strip())
        raise AssertionError(f"with-postgres exited {rc}: {err}")
    yield url, Path(bindir) / "psql"
    p.stdin.close()
    p.wait(timeout=60)


def psql(pg, sql):
    url, exe = pg
    r = run([exe, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def fresh(pg):
    """An empty database for the next test (the server is shared)."""
    psql(pg, "SET client_min_messages = warning;"
             " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")


def make_agent(root, name, script):
    d = Path(root) / name
    d.mkdir()
    (d / "agent.json").write_text(json.dumps(
        {"name": name, "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"],
         "required_secrets": ["PG_TOKEN"]}))
    (d / "run.sh").write_text(script)
    return d


def test_cli_records_go_to_postgres(pg, tmp_path):
    fresh(pg)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("CORDON_WORKSPACE", "CORDON_MASTER_KEY")}
    env.update(CORDON_STATE=str(state), CORDON_DATABASE_URL=pg[0], NO_COLOR="1")

    def cli(*args, input=None):
        r = run([CORDON, *args], input=input, env=env, timeout=60, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return r

    owner = cli("init").stdout.strip().splitlines()[-1]
    assert owner.startswith("cdn_live_")
    cli("secret", "set", "PG_TOKEN", input=VALUE)
    agent = make_agent(tmp_path, "pgbot", 'echo "token is $PG_TOKEN"\n')
    cli("agent", "register", str(agent))
    evs = [json.loads(l) for l in cli("run", "--json", "pgbot").stdout.splitlines() if l.strip()]
    rid = evs[0]["run_id"]
    assert evs[-1]["type"] == "run.finished" and evs[-1]["status"] == "succeeded", evs[-1]
    listed = json.loads(cli("runs", "list", "--json").stdout)
    runs = listed["runs"] if isinstance(listed, dict) else listed
    assert [r["id"] for r in runs] == [rid]

    # In Postgres, read there with psql...
    assert psql(pg, "SELECT version FROM schema_version") == "6"
    assert psql(pg, "SELECT id || ' ' || status || ' ' || agent FROM runs") == \
        f"{rid} succeeded pgbot"
    assert psql(pg, "SELECT kind || ' ' || name || ' ' || version FROM items") == "agent pgbot 1"
    assert psql(pg, "SELECT workspace || ' ' || name FROM secrets") == "default PG_TOKEN"
    assert psql(pg, "SELECT role FROM api_keys") == "owner"
    # ...where the secret is ciphertext only, and the key a hash only.
    assert psql(pg, "SELECT count(*) FROM secrets WHERE"
                    f" position(convert_to('{VALUE}', 'UTF8') in ciphertext) > 0") == "0"
    assert psql(pg, f"SELECT count(*) FROM api_keys WHERE hash = '{owner}'"
                    f" OR id = '{owner}'") == "0"
    # ...and not in SQLite: no cordon.db, while blobs and run files stay here.
    assert not (state / "cordon.db").exists()
    assert (state / "runs" / rid).is_dir()
    assert any((state / "blobs").iterdir())
    # The run's output was redacted as with SQLite: the vault read the
    # secret back from Postgres to know what to redact.
    out = (state / "runs" / rid / "stdout").read_text()
    assert "token is" in out and VALUE not in out


def test_url_password_never_shown(tmp_path):
    state = tmp_path / "state"
    env = dict(os.environ, CORDON_STATE=str(state),
               CORDON_DATABASE_URL="postgresql://cordon:hunter2-pw@/cordon"
                                   "?host=/nonexistent/socket&connect_timeout=2")
    r = run([CORDON, "runs", "list"], env=env)
    assert r.returncode != 0
    assert "postgres postgresql://cordon:***@/cordon" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    assert not (state / "cordon.db").exists()
    env["CORDON_DATABASE_URL"] = "mysql://cordon:hunter2-pw@db/cordon"
    r = run([CORDON, "runs", "list"], env=env)
    assert r.returncode != 0 and "not a postgresql://" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr


def test_serve_database_option_reaches_its_runs(pg, tmp_path):
    """--database alone (no variable): the server and the run it starts
    (a cordon-full process) both record in Postgres."""
    fresh(pg)
    srv = Server(tmp_path, extra=["--database", pg[0]])
    srv.env.pop("CORDON_DATABASE_URL", None)
    cli_env = dict(srv.env, CORDON_DATABASE_URL=pg[0])

    def cli(*args, input=None):
        r = run([CORDON, *args], input=input, env=cli_env, timeout=60)
        assert r.returncode == 0, r.stderr
        return r

    owner = cli("init").stdout.strip().splitlines()[-1]
    cli("secret", "set", "PG_TOKEN", input=VALUE)
    cli("agent", "register", str(make_agent(tmp_path, "pgsrv", "echo served\n")))
    srv.start()
    try:
        assert "metadata in postgres" in srv.log.read_text()
        st, j, _, _ = srv.req("POST", "/v1/runs", owner, body={"agent": "pgsrv"})
        assert st in (200, 201, 202), j
        rid = j["id"]
        assert srv.wait_final(owner, rid)["status"] == "succeeded"
    finally:
        srv.stop(signal.SIGTERM)
    assert psql(pg, f"SELECT status FROM runs WHERE id = '{rid}'") == "succeeded"
    assert not (srv.state / "cordon.db").exists()


def test_retention_and_pruning_on_postgres(pg, tmp_path, monkeypatch):
    """test_retention's pruning by age, holds and bounds, word for word,
    with the records in Postgres: the same runs, marks and blobs go."""
    import test_retention
    fresh(pg)
    monkeypatch.setenv("CORDON_DATABASE_URL", pg[0])
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (tmp_path / "cwd").mkdir()
    test_retention.test_prune_by_age_removes_exactly_what_is_due(state, tmp_path)
    assert not (state / "cordon.db").exists()
    assert psql(pg, "SELECT version FROM schema_version") == "6"
    # What is left: the two newest runs, no hold, the operator's row.
    assert psql(pg, "SELECT count(*) FROM runs") == "2"
    assert psql(pg, "SELECT count(*) FROM run_marks WHERE hold_ms > 0") == "0"
    assert psql(pg, "SELECT records_s || ' ' || records_max_s FROM retention"
                    " WHERE workspace = ''") == f"2 {30 * 86400}"


def test_state_migrate_sqlite_to_postgres(pg, tmp_path):
    """cordon state migrate: a single host's SQLite records move into an
    empty Postgres database, every table read back and compared; the
    state then works from Postgres (runs, holds, secrets, evidence); a
    second migration into the now non-empty database, and one while a run
    is going, are refused and write nothing."""
    fresh(pg)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    base = {k: v for k, v in os.environ.items()
            if k not in ("CORDON_WORKSPACE", "CORDON_MASTER_KEY", "CORDON_DATABASE_URL")}
    base.update(CORDON_STATE=str(state), NO_COLOR="1")
    on_pg = dict(base, CORDON_DATABASE_URL=pg[0])

    def cli(*args, env=base, input=None, rc=0):
        r = run([CORDON, *args], input=input, env=env, timeout=60, cwd=tmp_path)
        assert r.returncode == rc, (args, r.returncode, r.stderr)
        return r

    owner = cli("init").stdout.strip().splitlines()[-1]
    cli("secret", "set", "PG_TOKEN", input=VALUE)
    cli("agent", "register", str(make_agent(tmp_path, "mover", 'echo "token is $PG_TOKEN"\n')))
    evs = [json.loads(l) for l in cli("run", "--json", "mover").stdout.splitlines() if l.strip()]
    rid = evs[0]["run_id"]
    cli("runs", "hold", rid, "--reason", "audit 9")
    cli("retention", "set", "--operator", "records=90d")

    # A run going on: refused, nothing written.
    slow = make_agent(tmp_path, "slow", "sleep 4\n")
    cli("agent", "register", str(slow))
    going = subprocess.Popen([CORDON, "run", "slow"], env=base, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while "running" not in cli("runs", "list").stdout and time.time() < deadline:
            time.sleep(0.1)
        r = cli("state", "migrate", "--to", pg[0], rc=125)
        assert "not finished" in r.stderr and "nothing was written" in r.stderr, r.stderr
        assert psql(pg, "SELECT count(*) FROM runs") == "0"
    finally:
        assert going.wait(timeout=30) == 0

    r = cli("state", "migrate", "--json", "--to", pg[0])
    rep = json.loads(r.stdout)
    assert rep["verified"] is True and rep["from"] == "sqlite", rep
    rows = {t["name"]: t["rows"] for t in rep["tables"]}
    assert rows["runs"] == 2 and rows["items"] == 2 and rows["secrets"] == 1, rows
    assert rows["api_keys"] == 1 and rows["run_marks"] == 1 and rows["retention"] == 1, rows
    for name, n in rows.items():
        assert psql(pg, f"SELECT count(*) FROM {name}") == str(n), name

    # The state works from Postgres: the records, the hold, the vault
    # (the ciphertext moved; the master key is the state directory's),
    # and the old run's evidence, which checks the record's hashes.
    listed = json.loads(cli("runs", "list", "--json", env=on_pg).stdout)
    runs = listed["runs"] if isinstance(listed, dict) else listed
    assert rid in [x["id"] for x in runs]
    shown = json.loads(cli("runs", "show", "--json", rid, env=on_pg).stdout)
    assert shown["hold"]["reason"] == "audit 9", shown
    evs = [json.loads(l) for l in cli("run", "--json", "mover", env=on_pg).stdout.splitlines()
           if l.strip()]
    rid2 = evs[0]["run_id"]
    out = (state / "runs" / rid2 / "stdout").read_text()
    assert "token is" in out and VALUE not in out
    pack = tmp_path / "pack.tar"
    cli("evidence", "export", rid, "-o", str(pack), env=on_pg)
    cli("evidence", "verify", str(pack), env=on_pg)
    assert owner.startswith("cdn_live_")

    # Into a database that is not empty: refused, and nothing changes.
    before = psql(pg, "SELECT count(*) FROM runs")
    r = cli("state", "migrate", "--to", pg[0], rc=125)
    assert "must be an empty database" in r.stderr and "nothing was written" in r.stderr
    assert psql(pg, "SELECT count(*) FROM runs") == before
    r = cli("state", "migrate", "--to", "sqlite", rc=125)
    assert "both sqlite" in r.stderr, r.stderr

    # And back: into the state directory's own SQLite, emptied first; the
    # ciphertexts (bytes) arrive whole, so the vault still opens them.
    for f in state.glob("cordon.db*"):
        f.unlink()
    back = json.loads(cli("state", "migrate", "--json", "--from", pg[0], "--to", "sqlite",
                          env=base).stdout)
    assert back["to"] == "sqlite" and back["verified"] is True, back
    assert {t["name"]: t["sha256"] for t in back["tables"] if t["name"] != "runs"} == \
        {t["name"]: t["sha256"] for t in rep["tables"] if t["name"] != "runs"}
    assert json.loads(cli("runs", "show", "--json", rid).stdout)["hold"]["reason"] == "audit 9"
    evs = [json.loads(l) for l in cli("run", "--json", "mover").stdout.splitlines() if l.strip()]
    out = (state / "runs" / evs[0]["run_id"] / "stdout").read_text()
    assert "token is" in out and VALUE not in out
