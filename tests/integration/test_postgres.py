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
    assert psql(pg, "SELECT version FROM schema_version") == "2"
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
    assert psql(pg, "SELECT version FROM schema_version") == "2"
    # What is left: the two newest runs, no hold, the operator's row.
    assert psql(pg, "SELECT count(*) FROM runs") == "2"
    assert psql(pg, "SELECT count(*) FROM run_marks WHERE hold_ms > 0") == "0"
    assert psql(pg, "SELECT records_s || ' ' || records_max_s FROM retention"
                    " WHERE workspace = ''") == f"2 {30 * 86400}"
