# SPDX-License-Identifier: Apache-2.0
"""Usage (docs/usage.md, issue 14 section 5): GET /v1/usage and `cordon
usage` sum what the workspace's runs used, and the sums are the sums over
the run records: runs by status, wall and CPU seconds, the largest peak
memory, egress requests and bytes allowed and blocked, artifact bytes; by
agent, day and caller; members see their workspace's, nobody another's;
and Postgres sums the same records to the same figures as SQLite."""
import datetime
import json
import os

import pytest

from conftest import CORDON, run
from test_metrics import PROBE
from test_postgres import fresh, pg, psql  # noqa: F401 (pg is a fixture)
from test_serve import Server, agent
from upstream import Upstream

MAKER = "mkdir -p /workspace/out; head -c $(cat /workspace/input.json | tr -dc 0-9) " \
        "/dev/zero > /workspace/out/blob.txt; echo made\n"


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def sums(recs):
    """What the records say, summed as usage sums them."""
    out = {"runs": len(recs), "by_status": {}, "cpu_ms": 0, "peak": 0, "wall_ms": 0,
           "ea": 0, "eb": 0, "eab": 0, "ebb": 0, "art": 0}
    for r in recs:
        out["by_status"][r["status"]] = out["by_status"].get(r["status"], 0) + 1
        res = r["result"] or {}
        out["cpu_ms"] += res.get("resources", {}).get("cpu_ms", 0)
        out["peak"] = max(out["peak"], res.get("resources", {}).get("mem_peak_bytes", 0))
        eg = res.get("egress", {})
        out["ea"] += eg.get("allowed", 0)
        out["eb"] += eg.get("blocked", 0)
        out["eab"] += eg.get("allowed_bytes", 0)
        out["ebb"] += eg.get("blocked_bytes", 0)
        out["art"] += sum(a["size"] for a in res.get("artifacts", []))
    return out


def check(group, want):
    assert group["runs"] == want["runs"], (group, want)
    assert group["by_status"] == want["by_status"], (group, want)
    assert round(group["cpu_seconds"] * 1000) == want["cpu_ms"], (group, want)
    assert group["peak_memory_bytes"] == want["peak"], (group, want)
    e = group["egress"]
    assert (e["requests_allowed"], e["requests_blocked"], e["bytes_allowed"],
            e["bytes_blocked"]) == (want["ea"], want["eb"], want["eab"], want["ebb"]), (e, want)
    assert group["artifact_bytes"] == want["art"], (group, want)


def test_usage_is_the_sum_of_the_records(tmp_path, upstream, pg):
    s = Server(tmp_path, extra=["--allow-private", f"127.0.0.1:{upstream.port}"])
    (s.state / "policy.yaml").write_text(
        f"version: 1\ndomains:\n  - name: 127.0.0.1\n    ports: [{upstream.port}]\n")
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    member = s.cli("keys", "create", "bob", "--role", "member").stdout.strip().splitlines()[-1]
    eve = s.cli("keys", "create", "eve", "--role", "owner", ws="other").stdout.strip().splitlines()[-1]
    probe = agent(tmp_path, "probe", "", entrypoint=["python3", "/agent/main.py"],
                  profile="deployment")
    (probe / "main.py").write_text(PROBE)
    for d, ws in ((probe, None), (agent(tmp_path, "bad", "exit 3\n"), None),
                  (agent(tmp_path, "maker", MAKER), None), (agent(tmp_path, "ok", "true\n"), "other")):
        assert s.cli("agent", "register", str(d), ws=ws).returncode == 0
    before = datetime.datetime.now(datetime.timezone.utc)
    s.start()
    try:
        urls = {"allowed": f"http://127.0.0.1:{upstream.port}/x",
                "blocked": "http://blocked.example/"}
        plan = [(s.owner, "probe", {"urls": urls}), (s.owner, "probe", {"urls": urls}),
                (s.owner, "bad", {}), (member, "maker", {"n": 3000}), (s.owner, "maker", {"n": 1234}),
                (eve, "ok", {})]
        ids = []
        for key, ag, inp in plan:
            st, j, _, _ = s.req("POST", "/v1/runs", key, body={"agent": ag, "input": inp})
            assert st == 202, j
            ids.append((key, ag, j["id"]))
        recs = [(key, ag, s.wait_final(key, rid)) for key, ag, rid in ids]
        mine = [r for k, _, r in recs if k != eve]
        assert sorted(r["status"] for r in mine) == \
            ["failed", "succeeded", "succeeded", "succeeded", "succeeded"], mine
        assert sum(sums(mine)[x] for x in ("eab", "art")) > 4234  # not all zeros

        # by agent, read by a member: each agent's runs, and the total
        st, j, raw, _ = s.req("GET", "/v1/usage?group_by=agent", member)
        assert st == 200, raw
        assert j["workspace"] == "default" and j["group_by"] == "agent", j
        assert [g["key"] for g in j["groups"]] == ["bad", "maker", "probe"], j
        for g in j["groups"]:
            check(g, sums([r for _, ag, r in recs if ag == g["key"]]))
        check(j["total"], sums(mine))
        assert j["groups"][1]["artifact_bytes"] == 4234, j
        assert j["total"]["wall_seconds"] > 0
        # by day (UTC) and by caller: the same total, other cuts
        st, j, raw, _ = s.req("GET", "/v1/usage?group_by=day", s.owner)
        assert st == 200 and [g["key"] for g in j["groups"]] == [before.strftime("%Y-%m-%d")] \
            or before.date() != datetime.datetime.now(datetime.timezone.utc).date(), raw
        check(j["total"], sums(mine))
        st, j, raw, _ = s.req("GET", "/v1/usage?group_by=caller", s.owner)
        assert st == 200 and len(j["groups"]) == 2, raw
        assert all(g["key"].startswith("key:cdn_live_") for g in j["groups"]), j
        assert sorted(g["runs"] for g in j["groups"]) == [1, 4], j
        # the other workspace sees its own run alone
        st, j, raw, _ = s.req("GET", "/v1/usage", eve)
        assert st == 200 and j["workspace"] == "other" and j["groups"][0]["key"] == "", raw
        check(j["total"], sums([r for k, _, r in recs if k == eve]))
        # a window before the runs counts none
        st, j, raw, _ = s.req("GET", "/v1/usage?to=2001-01-01T00:00:00Z", s.owner)
        assert st == 200 and j["total"]["runs"] == 0 and j["from"] == "2000-12-02T00:00:00Z", raw
        for q, why in (("from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z", "before to"),
                       ("group_by=colour", "group_by"), ("from=yesterday", "from"),
                       ("to=1969-12-31T00:00:00Z", "after 1970")):
            st, j, raw, _ = s.req("GET", "/v1/usage?" + q, s.owner)
            assert st == 400 and why in j["error"]["message"], (q, raw)

        # the CLI through the API, with the member's key: the same sums
        env = dict(s.env, CORDON_URL=f"http://127.0.0.1:{s.port}", CORDON_API_KEY=member)
        r = run([CORDON, "usage", "--json", "--group-by", "agent"], env=env)
        assert r.returncode == 0, r.stderr
        via_api = json.loads(r.stdout)
        check(via_api["total"], sums(mine))
        r = run([CORDON, "usage", "--group-by", "agent"], env=env)
        assert r.returncode == 0 and "TOTAL" in r.stdout and "maker" in r.stdout, r.stdout
        r = run([CORDON, "usage", "--from", "tomorrow"], env=env)
        assert r.returncode == 125 and "--from" in r.stderr, r.stderr
    finally:
        s.stop()

    # On the state directory, and on Postgres after a migration: the
    # same records, summed by each backend's own query, the same figures.
    r = s.cli("usage", "--json", "--group-by", "agent")
    assert r.returncode == 0, r.stderr
    local = json.loads(r.stdout)
    assert local["groups"] == via_api["groups"] and local["total"] == via_api["total"]
    fresh(pg)
    r = s.cli("state", "migrate", "--to", pg[0])
    assert r.returncode == 0, r.stderr
    env = dict(s.env, CORDON_DATABASE_URL=pg[0])
    r = run([CORDON, "usage", "--json", "--group-by", "agent"], env=env)
    assert r.returncode == 0, r.stderr
    on_pg = json.loads(r.stdout)
    assert on_pg["groups"] == local["groups"] and on_pg["total"] == local["total"], (on_pg, local)
    r = run([CORDON, "usage", "--json", "--group-by", "day"], env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["total"] == local["total"], r.stdout
    # a result Postgres cannot read as JSON counts as none, not as an error
    bad = next(rid for _, ag, rid in ids if ag == "bad")
    psql(pg, f"UPDATE runs SET result_json = '{{not json' WHERE id = '{bad}'")
    r = run([CORDON, "usage", "--json", "--group-by", "agent"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"]["runs"] == local["total"]["runs"], r.stdout
