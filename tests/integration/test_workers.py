# SPDX-License-Identifier: Apache-2.0
"""cordon worker against a real Postgres (docs/deploy.md): one
`cordon serve --dispatch workers` only queues runs in the database, and
`cordon worker` processes take them under leases. Each run runs exactly
once; labels route runs only to workers that have them; a worker killed
mid-run leaves its run `lost` with the reason once its lease expires, and
only an agent that opted in gets a linked second attempt, on the other
worker; a worker asked to stop finishes its run, claims nothing more and
exits 0.

The workers share serve's state directory: blobs (the agents' code) and
run files are still local to a host until the S3 blob store lands.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON
from test_metrics import parse, tcp_get, unix_get, value
from test_postgres import fresh, pg, psql  # noqa: F401 (pg is a fixture)
from test_serve import Server, free_port

LEASE = 2  # seconds: a dead worker's run is lost 2-3 s after it died


def make_agent(root, name, script, **extra):
    d = Path(root) / name
    d.mkdir()
    doc = {"name": name, "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"]}
    doc.update(extra)
    (d / "agent.json").write_text(json.dumps(doc))
    (d / "run.sh").write_text(script)
    return d


class Worker:
    def __init__(self, srv, name, *args, wrap=(), lease=LEASE):
        """wrap: a command that runs the worker (the fleet test's nsenter)."""
        self.log = srv.tmp / f"worker-{name}.log"
        self.proc = subprocess.Popen(
            [*wrap, CORDON, "worker", "--json", "--lease", str(lease), "--state", str(srv.state),
             *args],
            env=srv.env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.id = None
        deadline = time.time() + 10
        while not self.id and time.time() < deadline:
            for e in self.events():
                if e.get("event") == "started":
                    self.id = e["worker"]
            time.sleep(0.05)
        assert self.id, self.log.read_text()

    def events(self):
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def claimed(self):
        return [e["run"] for e in self.events() if e.get("event") == "claimed"]

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def fleet(pg, tmp_path):
    fresh(pg)
    srv = Server(tmp_path, extra=["--database", pg[0], "--dispatch", "workers"])
    srv.env["CORDON_DATABASE_URL"] = pg[0]
    r = srv.cli("init")
    assert r.returncode == 0, r.stderr
    srv.owner = r.stdout.strip().splitlines()[-1]
    srv.start()
    srv.workers = []
    yield srv
    for w in srv.workers:
        w.stop(signal.SIGKILL)
    srv.stop()


def register(srv, d):
    r = srv.cli("agent", "register", str(d))
    assert r.returncode == 0, r.stderr


def dispatch(srv, agent, **body):
    st, j, raw, _ = srv.req("POST", "/v1/runs", srv.owner, {"agent": agent, **body})
    assert st == 202, raw
    return j["id"]


def record(srv, rid):
    st, j, raw, _ = srv.req("GET", f"/v1/runs/{rid}", srv.owner)
    assert st == 200, raw
    return j


def wait_for(cond, timeout=20, what="a condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_each_run_once_and_labels_route(fleet, pg, tmp_path):
    register(fleet, make_agent(tmp_path, "quick", 'echo "ran $$"\n'))
    register(fleet, make_agent(tmp_path, "gpujob", "echo gpu\n", labels={"gpu": "a100"}))
    a = Worker(fleet, "a", "--concurrency", "3", "--label", "gpu=a100", "--label", "zone=x")
    b = Worker(fleet, "b", "--concurrency", "3")
    fleet.workers += [a, b]
    quick = [dispatch(fleet, "quick") for _ in range(12)]
    gpu = [dispatch(fleet, "gpujob") for _ in range(3)]
    # The request's labels replace the agent's: this one only zone=x can take.
    zoned = dispatch(fleet, "quick", labels={"zone": "x"})
    every = quick + gpu + [zoned]
    starts = []
    for rid in every:
        j = fleet.wait_final(fleet.owner, rid, timeout=60)
        assert j["status"] == "succeeded", j
        assert j["attempt"] == 1 and "retry_of" not in j
        starts.append(j["result"]["protections"]["start"])
    # Each worker keeps a warm pool (2 by default): its standbys took some
    # runs, under the worker's lease like the others.
    assert starts.count("warm") >= 2, starts
    # Exactly once: every run claimed by one worker, once, and none missing.
    claims = a.claimed() + b.claimed()
    assert sorted(claims) == sorted(every)
    # The record names the worker that ran it; labels went only to a.
    for rid in gpu + [zoned]:
        j = record(fleet, rid)
        assert j["worker"] == a.id, j
        assert rid in a.claimed() and rid not in b.claimed()
    assert record(fleet, gpu[0])["labels"] == {"gpu": "a100"}
    assert record(fleet, zoned)["labels"] == {"zone": "x"}
    # One run process each: a single run.created event in each run's events.
    for rid in every:
        events = (fleet.state / "runs" / rid / "events.ndjson").read_text().splitlines()
        assert sum(1 for e in events if json.loads(e)["type"] == "run.created") == 1
    # The database says the same: one supervisor each, leases by a or b.
    owners = psql(pg, "SELECT DISTINCT lease_owner FROM runs ORDER BY 1").splitlines()
    assert set(owners) <= {a.id, b.id}
    # Both listened for new runs (LISTEN/NOTIFY) and nothing went wrong.
    for w in (a, b):
        assert not [e for e in w.events() if e["event"] in ("warning", "error")], w.events()
    # A label no worker has waits, queued.
    st, _, raw, _ = fleet.req("POST", "/v1/runs", fleet.owner, {"agent": "quick",
                                                                "labels": {"gpu": "h100"}})
    assert st == 202, raw
    st, _, raw, _ = fleet.req("POST", "/v1/runs", fleet.owner, {"agent": "quick",
                                                                "labels": {"bad key": "x"}})
    assert st == 400 and b"labels" in raw, raw


def test_killed_worker_runs_are_lost_and_opted_in_retried(fleet, pg, tmp_path):
    sleep = 'sleep 4; echo done\n'
    register(fleet, make_agent(tmp_path, "once", sleep))
    register(fleet, make_agent(tmp_path, "again", sleep, retry={"on_lost": True, "max": 1}))
    a = Worker(fleet, "a", "--concurrency", "2")
    fleet.workers.append(a)
    once = dispatch(fleet, "once")
    again = dispatch(fleet, "again")
    for rid in (once, again):
        assert fleet.wait_running(fleet.owner, rid), record(fleet, rid)
    port = free_port()
    b = Worker(fleet, "b", "--concurrency", "2", "--metrics-listen", f"127.0.0.1:{port}")
    fleet.workers.append(b)
    killed_at = time.time()
    a.stop(signal.SIGKILL)
    for rid in (once, again):
        j = wait_for(lambda rid=rid: (lambda j: j if j["status"] == "lost" else None)(
            record(fleet, rid)), what=f"{rid} lost")
        assert j["error"].startswith(f"worker {a.id}'s lease expired at 20"), j
        assert j["worker"] == a.id
    # Not before its lease ran out (renewed last up to a third of it before
    # the kill), and not long after.
    assert LEASE * 2 / 3 - 0.2 <= time.time() - killed_at <= LEASE + 8
    # The opted-in run has a second attempt, its own record, linked; the
    # other is never run again.
    rows = psql(pg, "SELECT id, attempt, retry_of, lease_owner FROM runs"
                    f" WHERE retry_of <> '' ORDER BY id").splitlines()
    assert len(rows) == 1, rows
    retry_id, attempt, retry_of, _ = rows[0].split("|")
    assert (attempt, retry_of) == ("2", again)
    j = fleet.wait_final(fleet.owner, retry_id, timeout=30)
    assert j["status"] == "succeeded" and j["attempt"] == 2 and j["retry_of"] == again, j
    assert j["worker"] == b.id and retry_id in b.claimed()
    assert once not in b.claimed() and again not in b.claimed()
    # The CLI and the API filter by it.
    r = fleet.cli("runs", "list", "--status", "lost", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    listed = listed["runs"] if isinstance(listed, dict) else listed
    assert sorted(x["id"] for x in listed) == sorted([once, again])
    st, j, raw, _ = fleet.req("GET", "/v1/runs?status=lost", fleet.owner)
    assert st == 200 and sorted(x["id"] for x in j["runs"]) == sorted([once, again]), raw
    # Marked once: the lost runs' records kept their status, and nothing
    # else was queued for them.
    assert psql(pg, "SELECT count(*) FROM runs") == "3"
    # The killed worker's run processes died with it (PR_SET_PDEATHSIG):
    # none wrote a result after the record was lost.
    time.sleep(0.5)
    for rid in (once, again):
        assert record(fleet, rid)["status"] == "lost"
        assert not (fleet.state / "runs" / rid / "result.json").exists()
    # Whoever marked each (serve, or b, which expires others' leases too)
    # counted it: two in all. b renewed the retry's lease as it ran.
    st, _, text = unix_get(fleet.state / "serve.sock", "/metrics")
    assert st == 200
    served = sum(v for (n, l), v in parse(text).items()
                 if n == "cordon_runs_total" and ("status", "lost") in l)
    st, _, text = tcp_get(port)
    assert st == 200
    m = parse(text)
    assert served + value(m, "cordon_leases_expired_total") == 2
    assert value(m, "cordon_runs_total", status="succeeded") == 1
    assert value(m, "cordon_worker_runs_claimed_total") == 1
    assert value(m, "cordon_lease_renewals_total") >= 3
    assert value(m, "cordon_worker_runs_running") == 0


def test_sigterm_finishes_its_run_and_claims_nothing_more(fleet, pg, tmp_path):
    register(fleet, make_agent(tmp_path, "nap", "sleep 2; echo rested\n"))
    w = Worker(fleet, "c", "--concurrency", "1")
    fleet.workers.append(w)
    first = dispatch(fleet, "nap")
    assert fleet.wait_running(fleet.owner, first), record(fleet, first)
    w.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any(e.get("event") == "draining" for e in w.events()), what="draining")
    second = dispatch(fleet, "nap")
    assert w.proc.wait(timeout=30) == 0, w.log.read_text()
    assert record(fleet, first)["status"] == "succeeded"
    j = record(fleet, second)
    assert j["status"] == "created" and "worker" not in j, j
    assert w.claimed() == [first]
    assert [e["event"] for e in w.events()][-1] == "stopped"
    # What waits for a worker can be cancelled through the API: no worker
    # takes it after that.
    st, _, raw, _ = fleet.req("POST", f"/v1/runs/{second}/cancel", fleet.owner)
    assert st == 202, raw
    j = record(fleet, second)
    assert j["status"] == "cancelled" and j["error"].startswith("cancelled by key "), j
    st, _, raw, _ = fleet.req("POST", f"/v1/runs/{second}/cancel", fleet.owner)
    assert st == 409, raw


def test_cancel_a_run_a_worker_runs(fleet, pg, tmp_path):
    register(fleet, make_agent(tmp_path, "long", "sleep 20\n"))
    w = Worker(fleet, "e", "--concurrency", "1")
    fleet.workers.append(w)
    rid = dispatch(fleet, "long")
    assert fleet.wait_running(fleet.owner, rid), record(fleet, rid)
    # The worker is on this host: its run's control socket answers.
    st, _, raw, _ = fleet.req("POST", f"/v1/runs/{rid}/cancel", fleet.owner)
    assert st == 202, raw
    j = fleet.wait_final(fleet.owner, rid, timeout=20)
    assert j["status"] == "cancelled" and j["worker"] == w.id, j


def test_a_worker_that_lost_its_lease_stops_its_run(fleet, pg, tmp_path):
    # As if the worker had stalled past its lease: the lease ran out while
    # the run ran. The worker's next heartbeat does not renew it, so it
    # kills the run, which is (by it or serve) marked lost, and the old
    # process never writes a result over that.
    register(fleet, make_agent(tmp_path, "slow", "sleep 6; echo late\n"))
    w = Worker(fleet, "d", "--concurrency", "1")
    fleet.workers.append(w)
    rid = dispatch(fleet, "slow")
    assert fleet.wait_running(fleet.owner, rid), record(fleet, rid)
    psql(pg, f"UPDATE runs SET lease_until_ms = 1000 WHERE id = '{rid}'")
    wait_for(lambda: any(e.get("event") == "lost" and e.get("run") == rid for e in w.events()),
             timeout=10, what="the worker to stop its run")
    j = wait_for(lambda: (lambda j: j if j["status"] == "lost" else None)(record(fleet, rid)),
                 what="the run lost")
    assert j["error"] == f"worker {w.id}'s lease expired at 1970-01-01T00:00:01.000Z", j
    wait_for(lambda: any(e.get("event") == "finished" and e.get("run") == rid
                         for e in w.events()), what="its process reaped")
    assert record(fleet, rid)["status"] == "lost"
    assert not (fleet.state / "runs" / rid / "result.json").exists()
