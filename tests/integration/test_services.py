# SPDX-License-Identifier: Apache-2.0
"""Services (docs/services.md, issue 14 section 1): `cordon service` and
/v1/services make them; cordon serve keeps them running, each start a run
with caller service:NAME. A crash loop pauses one, with the reason, and
resume clears it; a secret rotated in the vault is the new one at the next
start, and redacted from the logs; a failing health check, probed inside
the sandbox's own network, restarts the run; --env refuses names that look
like secrets; members read, owners change; a drained serve stops services
with SIGTERM and the next start brings them back."""
import hashlib
import json
import signal
import socket
import time

from conftest import run, wait_until
from test_postgres import fresh, pg  # noqa: F401 (pg is a fixture)
from test_serve import Server, agent

FAST = ["--service-backoff", "100ms", "--service-backoff-max", "400ms",
        "--crash-loop-exits", "3", "--crash-loop-window", "1m",
        "--service-stop-timeout", "3s"]


def svc(s, key, name):
    st, j, raw, _ = s.req("GET", f"/v1/services/{name}", key)
    assert st == 200, raw
    return j


def runs_of(s, key, name):
    st, j, raw, _ = s.req("GET", "/v1/runs?limit=200", key)
    assert st == 200, raw
    return [r for r in j["runs"] if r["caller"] == "service:" + name]


def stdout_of(s, key, run_id):
    st, _, raw, _ = s.req("GET", f"/v1/runs/{run_id}/stdout", key)
    return raw.decode() if st == 200 else ""


def test_services_restart_loop_secrets_and_roles(tmp_path):
    s = Server(tmp_path, extra=FAST)
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    member = s.cli("keys", "create", "bob", "--role", "member").stdout.strip().splitlines()[-1]
    crash = agent(tmp_path, "crash", "echo going down; exit 3\n")
    # prints what it was given, then ends after a while: each start shows
    # the secret as it was then (as a hash: the value itself is redacted)
    show = agent(tmp_path, "show",
                 'printf "%s" "$API_TOKEN" | sha256sum; echo "raw=$API_TOKEN mode=$MODE"\n'
                 'sleep 3\n')
    for d in (crash, show):
        assert s.cli("agent", "register", str(d)).returncode == 0
    assert s.cli("secret", "set", "API_TOKEN", input="first-value-1234\n").returncode == 0

    # --env refuses what looks like a secret, and says to use --secret
    for name in ("GITHUB_TOKEN", "db_password", "My_Api_Key", "SSH_PRIVATE_KEY",
                 "AWS_SECRET", "CREDENTIALS_FILE"):
        r = s.cli("service", "create", "bad", "show", "--env", f"{name}=x")
        assert r.returncode == 125 and "--secret" in r.stderr and name in r.stderr, r.stderr
    for args, why in ((["--secret", "NOPE"], "not set"), (["--env", "1X=2"], "NAME=VALUE"),
                      (["--secret", "API_TOKEN", "--env", "API_TOKEN=x"], "looks like")):
        r = s.cli("service", "create", "bad", "show", *args)
        assert r.returncode == 125 and why in r.stderr, (args, r.stderr)
    r = s.cli("service", "create", "bad", "ghost")
    assert r.returncode == 125 and "ghost" in r.stderr, r.stderr

    r = s.cli("service", "create", "looper", "crash", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "starting"
    r = s.cli("service", "create", "shower", "show", "--secret", "API_TOKEN",
              "--env", "MODE=blue", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["env"] == {"MODE": "blue"} and j["secrets"] == ["API_TOKEN"], j

    s.start()
    try:
        # a crash loop: 3 ends within the window pause it, with the reason
        assert wait_until(lambda: svc(s, member, "looper")["state"] == "paused", timeout=20)
        j = svc(s, member, "looper")
        assert j["starts"] == 3 and j["exits"] == 3, j
        assert "crash loop" in j["paused_reason"] and "exit 3" in j["paused_reason"], j
        assert j["run"] is None and j["last_run"], j
        runs = runs_of(s, member, "looper")
        assert len(runs) == 3 and all(x["status"] == "failed" for x in runs), runs
        time.sleep(0.6)
        assert len(runs_of(s, member, "looper")) == 3  # paused: nothing starts
        assert "service.paused" in s.log.read_text()
        r = s.cli("service", "list")
        assert r.returncode == 0 and "paused" in r.stdout and "crash loop" in r.stdout, r.stdout

        # members read; owners change
        st, j, raw, _ = s.req("GET", "/v1/services", member)
        assert st == 200 and {x["name"] for x in j["items"]} == {"looper", "shower"}, raw
        for method, path, body in (("POST", "/v1/services", {"name": "x", "agent": "show"}),
                                   ("POST", "/v1/services/looper/resume", None),
                                   ("POST", "/v1/services/shower/pause", None),
                                   ("DELETE", "/v1/services/looper", None)):
            st, _, raw, _ = s.req(method, path, member, body)
            assert st == 403, (path, raw)
        st, j, raw, _ = s.req("POST", "/v1/services", s.owner,
                              {"name": "x", "agent": "show", "env": {"API_KEY": "k"}})
        assert st == 400 and "--secret" in j["error"]["message"], raw
        st, j, raw, _ = s.req("POST", "/v1/services", s.owner,
                              {"name": "x", "agent": "show", "colour": 1})
        assert st == 400 and "colour" in j["error"]["message"], raw

        # resume clears the count: it starts again
        st, j, raw, _ = s.req("POST", "/v1/services/looper/resume", s.owner)
        assert st == 200 and j["state"] != "paused" and j["paused_reason"] is None, raw
        assert wait_until(lambda: svc(s, member, "looper")["starts"] > 3, timeout=10)

        # the secret at each start: rotate it, and the next start has the new one
        def hashes():
            return {stdout_of(s, member, x["id"]).split(" ")[0]
                    for x in runs_of(s, member, "shower")}
        h1 = hashlib.sha256(b"first-value-1234").hexdigest()
        h2 = hashlib.sha256(b"second-value-5678").hexdigest()
        assert wait_until(lambda: h1 in hashes(), timeout=15)
        st, _, raw, _ = s.req("PUT", "/v1/secrets/API_TOKEN", s.owner,
                              {"value": "second-value-5678"})
        assert st in (200, 201), raw
        assert wait_until(lambda: h2 in hashes(), timeout=15)
        outs = [stdout_of(s, member, x["id"]) for x in runs_of(s, member, "shower")]
        text = "".join(outs)
        assert "mode=blue" in text and "first-value" not in text and "second-value" not in text
        r = s.cli("service", "logs", "shower")
        assert r.returncode == 0 and "mode=blue" in r.stdout, r.stderr
        assert "second-value" not in r.stdout
        assert svc(s, member, "shower")["restarts"] >= 1

        # pause stops the run and starts nothing; rm removes it
        st, j, raw, _ = s.req("POST", "/v1/services/shower/pause", s.owner)
        assert st == 200 and j["state"] == "paused", raw
        assert wait_until(lambda: svc(s, member, "shower")["run"] is None, timeout=10)
        n = len(runs_of(s, member, "shower"))
        time.sleep(0.5)
        assert len(runs_of(s, member, "shower")) == n
        st, _, raw, _ = s.req("DELETE", "/v1/services/shower", s.owner)
        assert st == 200, raw
        st, _, raw, _ = s.req("GET", "/v1/services/shower", member)
        assert st == 404, raw
    finally:
        s.stop()


def test_health_check_restarts_and_drain_stops_gracefully(tmp_path):
    s = Server(tmp_path, extra=FAST)
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    # One serves / (healthy) and traps SIGTERM; the other's check asks a
    # path that is not there: 404, twice in a row, and it is restarted.
    web = ('cd /tmp && echo ok > ok\n'
           'trap \'echo got TERM; exit 0\' TERM\n'
           'python3 -m http.server 18473 --bind 127.0.0.1 >/dev/null 2>&1 &\n'
           'echo serving\n'
           'while :; do sleep 0.1; done\n')
    assert s.cli("agent", "register", str(agent(
        tmp_path, "good", web,
        limits={"timeout_seconds": 600},
        health={"port": 18473, "path": "/ok", "interval": 1, "failures": 5}))).returncode == 0
    assert s.cli("agent", "register", str(agent(
        tmp_path, "sick", web.replace("good", "sick"),
        limits={"timeout_seconds": 600},
        health={"port": 18473, "path": "/missing", "interval": 1, "failures": 2}))).returncode == 0
    for name in ("good", "sick"):
        assert s.cli("service", "create", name, name).returncode == 0
    # a bad health block is refused when the agent is registered
    r = s.cli("agent", "register", str(agent(tmp_path, "badh", "true\n",
                                             health={"port": 18473, "path": "/a b"})))
    assert r.returncode != 0 and "health.path" in r.stderr, r.stderr

    s.start()
    try:
        # the sick one fails its check twice and is restarted, as failed
        def sick_runs():
            return runs_of(s, s.owner, "sick")
        assert wait_until(lambda: any(x["status"] == "failed" for x in sick_runs()), timeout=20)
        bad = [x for x in sick_runs() if x["status"] == "failed"][0]
        assert "health check failed 2 times" in bad["error"] and "4xx" in bad["error"], bad
        st, _, raw, _ = s.req("GET", f"/v1/runs/{bad['id']}/events", s.owner)
        events = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
        failed = [e for e in events if e.get("type") == "health.failed"]
        assert len(failed) == 2 and failed[-1]["in_a_row"] == 2, failed
        assert wait_until(lambda: svc(s, s.owner, "sick")["starts"] >= 2, timeout=10)
        assert svc(s, s.owner, "sick")["exits"] >= 1
        # the good one is still on its first run
        g = svc(s, s.owner, "good")
        assert g["state"] == "running" and g["starts"] == 1, g
        good_run = g["run"]
        # nothing was published: the host's own 127.0.0.1:18473 is closed
        probe = socket.socket()
        try:
            assert probe.connect_ex(("127.0.0.1", 18473)) != 0
        finally:
            probe.close()
    finally:
        # drain: the services get SIGTERM and stop; they stay active
        rc = s.stop(signal.SIGTERM)
    assert rc == 0
    out = s.cli("runs", "output", good_run)
    assert out.returncode == 0 and "got TERM" in out.stdout, (out.stdout, out.stderr)
    show = json.loads(s.cli("service", "show", "good", "--json").stdout)
    assert show["state"] != "paused" and show["run"] is None and show["exits"] == 0, show
    # the next start brings it back
    s.start()
    try:
        assert wait_until(lambda: svc(s, s.owner, "good")["starts"] == 2
                          and svc(s, s.owner, "good")["run"], timeout=15)
        again = svc(s, s.owner, "good")["run"]
        assert again != good_run
        # removed on the state directory: its run is stopped, not left
        r = s.cli("service", "rm", "good")
        assert r.returncode == 0, r.stderr
        def ended():
            st, j, _, _ = s.req("GET", f"/v1/runs/{again}", s.owner)
            return st == 200 and j["status"] not in ("created", "running")
        assert wait_until(ended, timeout=10)
        r = s.cli("service", "rm", "sick")
        assert r.returncode == 0, r.stderr
    finally:
        s.stop()


def test_services_on_postgres(tmp_path, pg):
    fresh(pg)
    s = Server(tmp_path, extra=FAST)
    s.env["CORDON_DATABASE_URL"] = pg[0]
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    assert s.cli("agent", "register", str(agent(tmp_path, "tick", "echo tick; exit 1\n"))).returncode == 0
    r = s.cli("service", "create", "pg1", "tick", "--env", "A=b", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["env"] == {"A": "b"}, r.stderr
    assert s.cli("service", "create", "pg1", "tick").returncode == 125
    r = s.cli("service", "pause", "pg1", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "paused", r.stdout
    r = s.cli("service", "resume", "pg1", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "starting", r.stdout
    # serve on Postgres starts it, counts its ends and pauses the loop there
    s.start()
    try:
        assert wait_until(lambda: svc(s, s.owner, "pg1")["state"] == "paused", timeout=20)
        j = svc(s, s.owner, "pg1")
        assert j["starts"] == 3 and "crash loop" in j["paused_reason"], j
    finally:
        s.stop()
    r = s.cli("service", "logs", "pg1")
    assert r.returncode == 0 and "tick" in r.stdout, (r.stdout, r.stderr)
    assert s.cli("service", "rm", "pg1").returncode == 0
    r = s.cli("service", "list", "--json")
    assert json.loads(r.stdout)["items"] == [], r.stdout
