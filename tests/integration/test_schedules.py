# SPDX-License-Identifier: Apache-2.0
"""Schedules (docs/schedules.md, issue 14 section 2): `cordon schedule`
and /v1/schedules make them, cordon serve fires them as runs with caller
schedule:NAME; `@every 2s` with each overlap policy (forbid records the
skip, allow overlaps, replace cancels the last run); pause and resume;
times missed while serve was down skipped and recorded, or run once;
members read, owners change; bad expressions and zones refused; and the
same on Postgres through the CLI."""
import json
import time

from conftest import CORDON, run, wait_until
from test_postgres import fresh, pg  # noqa: F401 (pg is a fixture)
from test_serve import Server, agent


def runs_of(s, key, agent_name):
    st, j, raw, _ = s.req("GET", f"/v1/runs?agent={agent_name}&limit=200", key)
    assert st == 200, raw
    return j["runs"]


def sched(s, key, name):
    st, j, raw, _ = s.req("GET", f"/v1/schedules/{name}", key)
    assert st == 200, raw
    return j


def test_schedules_fire_overlap_pause_and_catch_up(tmp_path):
    s = Server(tmp_path)
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    member = s.cli("keys", "create", "bob", "--role", "member").stdout.strip().splitlines()[-1]
    for name, script in (("tick", "echo tick\n"), ("slow", "sleep 4\n")):
        assert s.cli("agent", "register", str(agent(tmp_path, name, script))).returncode == 0

    # The CLI on the state directory: made, shown, and what is wrong refused.
    r = s.cli("schedule", "create", "ticker", "--cron", "@every 2s", "tick", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert (j["cron"], j["overlap"], j["catch_up"], j["tz"], j["paused"]) == \
        ("@every 2s", "forbid", "skip", "UTC", False), j
    for args, why in ((["--cron", "61 * * * *", "tick"], "minute"),
                      (["--cron", "@every 500ms", "tick"], "every"),
                      (["--cron", "0 9 * * *", "--tz", "Mars/Olympus", "tick"], "Mars/Olympus"),
                      (["--cron", "0 9 * * *", "--tz", "../../etc/passwd", "tick"], "zone"),
                      (["--cron", "0 9 * * *", "--tz", "localtime", "tick"], "not a zone"),
                      (["--cron", "@hourly", "ghost"], "ghost"),
                      (["--cron", "@hourly", "tick", "--overlap", "sometimes"], "overlap")):
        r = s.cli("schedule", "create", "bad", *args)
        assert r.returncode == 125 and why in r.stderr, (args, r.stderr)
    r = s.cli("schedule", "create", "ticker", "--cron", "@hourly", "tick")
    assert r.returncode == 125 and "already exists" in r.stderr, r.stderr
    r = s.cli("schedule", "create", "berlin", "--cron", "30 2 * * *", "--tz", "Europe/Berlin",
              "tick", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["next"].endswith(":30:00.000Z"), r.stdout
    r = s.cli("schedule", "create", "once", "--cron", "@every 2s", "--catch-up", "once", "tick")
    assert r.returncode == 0, r.stderr

    s.start()
    try:
        # fired as runs with caller schedule:NAME
        assert wait_until(lambda: sched(s, member, "ticker")["fired"] >= 2, timeout=15)
        runs = runs_of(s, member, "tick")
        assert {r["caller"] for r in runs} >= {"schedule:ticker"}, runs
        assert sched(s, member, "ticker")["last_run"] in {r["id"] for r in runs}

        # members read, owners change
        for method, path, body in (("POST", "/v1/schedules", {"name": "x", "agent": "tick",
                                                               "cron": "@hourly"}),
                                   ("POST", "/v1/schedules/ticker/pause", None),
                                   ("DELETE", "/v1/schedules/ticker", None)):
            st, j, raw, _ = s.req(method, path, member, body)
            assert st == 403, (path, raw)
        st, j, raw, _ = s.req("POST", "/v1/schedules", s.owner,
                              {"name": "x", "agent": "tick", "cron": "@hourly", "colour": 1})
        assert st == 400 and "colour" in j["error"]["message"], raw
        st, j, raw, _ = s.req("POST", "/v1/schedules", s.owner,
                              {"name": "x", "agent": "tick", "cron": "* * *"})
        assert st == 400, raw

        # the overlap policies, on an agent that runs 4 s, fired every second
        for pol in ("forbid", "allow", "replace"):
            st, j, raw, _ = s.req("POST", "/v1/schedules", s.owner,
                                  {"name": "s-" + pol, "agent": "slow", "cron": "@every 1s",
                                   "overlap": pol})
            assert st == 201 and j["overlap"] == pol, raw
        time.sleep(3.6)
        by = {pol: sched(s, member, "s-" + pol) for pol in ("forbid", "allow", "replace")}
        slow = runs_of(s, member, "slow")
        mine = {pol: [r for r in slow if r["caller"] == "schedule:s-" + pol]
                for pol in by}
        # forbid: one run, the other times skipped with the reason
        assert len(mine["forbid"]) == 1 and by["forbid"]["skipped"] >= 2, (by, mine)
        assert "still going (overlap: forbid)" in by["forbid"]["last_skip"]["reason"]
        # allow: runs overlap
        going = [r for r in mine["allow"] if r["status"] in ("created", "running")]
        assert len(mine["allow"]) >= 3 and len(going) >= 2, mine["allow"]
        # replace: the earlier runs were cancelled by the schedule
        assert wait_until(lambda: [r for r in runs_of(s, member, "slow")
                                   if r["caller"] == "schedule:s-replace"
                                   and r["status"] == "cancelled"], timeout=10)
        gone = [r for r in runs_of(s, member, "slow")
                if r["caller"] == "schedule:s-replace" and r["status"] == "cancelled"]
        assert "schedule:s-replace" in gone[0]["error"], gone
        for pol in by:
            st, _, raw, _ = s.req("DELETE", f"/v1/schedules/s-{pol}", s.owner)
            assert st == 200, raw

        # pause: nothing fires; resume: it fires again
        st, j, raw, _ = s.req("POST", "/v1/schedules/ticker/pause", s.owner)
        assert st == 200 and j["paused"] and j["next"] is None, raw
        n = sched(s, member, "ticker")["fired"]
        time.sleep(2.4)
        assert sched(s, member, "ticker")["fired"] == n
        st, j, raw, _ = s.req("POST", "/v1/schedules/ticker/resume", s.owner)
        assert st == 200 and not j["paused"], raw
        assert wait_until(lambda: sched(s, member, "ticker")["fired"] > n, timeout=10)
    finally:
        s.stop()

    # Times missed while no serve ran: "skip" records them, "once" runs once.
    before = {n: json.loads(s.cli("schedule", "show", n, "--json").stdout)
              for n in ("ticker", "once")}
    time.sleep(3)
    s.start()
    try:
        assert wait_until(lambda: sched(s, member, "ticker")["skipped"] > before["ticker"]["skipped"],
                          timeout=10)
        assert "missed since" in sched(s, member, "ticker")["last_skip"]["reason"]
        assert wait_until(lambda: sched(s, member, "once")["fired"] > before["once"]["fired"],
                          timeout=10)
        o = sched(s, member, "once")
        assert o["last_skip"] is None or "missed" not in o["last_skip"]["reason"], o
    finally:
        s.stop()
    r = s.cli("schedule", "list")
    assert r.returncode == 0 and "ticker" in r.stdout and "once" in r.stdout, r.stdout
    assert s.cli("schedule", "rm", "ticker").returncode == 0
    r = s.cli("schedule", "show", "ticker")
    assert r.returncode == 125 and "no schedule ticker" in r.stderr, r.stderr


def test_schedules_on_postgres(tmp_path, pg):
    fresh(pg)
    s = Server(tmp_path)
    s.env["CORDON_DATABASE_URL"] = pg[0]
    assert s.cli("init").returncode == 0
    assert s.cli("agent", "register", str(agent(tmp_path, "tick", "echo tick\n"))).returncode == 0
    r = s.cli("schedule", "create", "pg1", "--cron", "*/15 9-17 * * MON-FRI", "--tz",
              "Europe/Berlin", "--overlap", "replace", "tick", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert (j["overlap"], j["tz"]) == ("replace", "Europe/Berlin") and j["next"], j
    assert s.cli("schedule", "create", "pg1", "--cron", "@hourly", "tick").returncode == 125
    r = s.cli("schedule", "pause", "pg1", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["paused"], r.stdout
    r = s.cli("schedule", "resume", "pg1", "--json")
    assert r.returncode == 0 and not json.loads(r.stdout)["paused"], r.stdout
    r = s.cli("schedule", "list", "--json")
    assert [x["name"] for x in json.loads(r.stdout)["items"]] == ["pg1"], r.stdout
    assert s.cli("schedule", "rm", "pg1").returncode == 0
    r = s.cli("schedule", "list", "--json")
    assert json.loads(r.stdout)["items"] == [], r.stdout
    # serve on Postgres fires one: the claim and the record there
    assert s.cli("schedule", "create", "pg2", "--cron", "@every 1s", "tick").returncode == 0
    s.start()
    try:
        def fired():
            r = s.cli("schedule", "show", "pg2", "--json")
            return json.loads(r.stdout)["fired"] >= 2 if r.returncode == 0 else False
        assert wait_until(fired, timeout=15)
    finally:
        s.stop()


def test_a_workspace_has_at_most_100_schedules(tmp_path):
    s = Server(tmp_path)
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    assert s.cli("agent", "register", str(agent(tmp_path, "tick", "true\n"))).returncode == 0
    s.start()
    try:
        for i in range(100):
            st, _, raw, _ = s.req("POST", "/v1/schedules", s.owner,
                                  {"name": f"h{i}", "agent": "tick", "cron": "@hourly"})
            assert st == 201, raw
        st, j, raw, _ = s.req("POST", "/v1/schedules", s.owner,
                              {"name": "h100", "agent": "tick", "cron": "@hourly"})
        assert st == 409 and "100 schedules" in j["error"]["message"], raw
        st, _, raw, _ = s.req("DELETE", "/v1/schedules/h0", s.owner)
        assert st == 200, raw
        st, _, raw, _ = s.req("POST", "/v1/schedules", s.owner,
                              {"name": "h100", "agent": "tick", "cron": "@hourly"})
        assert st == 201, raw
    finally:
        s.stop()
