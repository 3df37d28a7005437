# SPDX-License-Identifier: Apache-2.0
"""cordon serve: keys and roles, workspaces, bad input, runs over the API,
cancel, drain, and a restart in the middle of runs."""
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import CORDON, run

SECRET = "srv-secret-value-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    connection = http.client.HTTPConnection  # test_deb.py's server is in a netns

    def __init__(self, tmp_path, extra=()):
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.state.mkdir(mode=0o700, exist_ok=True)
        self.env = dict(os.environ, CORDON_STATE=str(self.state))
        self.extra = list(extra)
        self.proc = None
        self.log = tmp_path / "serve.log"

    def cli(self, *args, input=None, ws=None):
        env = dict(self.env)
        if ws:
            env["CORDON_WORKSPACE"] = ws
        return run([CORDON, *args], input=input, env=env, timeout=60)

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [CORDON, "serve", "--listen", f"127.0.0.1:{self.port}", *self.extra],
            env=self.env, stderr=open(self.log, "w"))
        sock = self.state / "serve.sock"
        for _ in range(100):
            if sock.exists() and self.health() is not None:
                return
            time.sleep(0.05)
        raise AssertionError("serve did not start: " + self.log.read_text())

    def health(self):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(self.state / "serve.sock"))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return json.loads(data.split(b"\r\n\r\n", 1)[1])
        except OSError:
            return None
        finally:
            s.close()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.proc.wait(timeout=timeout)
            self.proc = None
            return rc
        return None

    def req(self, method, path, key=None, body=None, headers=None, raw=None):
        c = self.connection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        try:
            j = json.loads(payload)
        except ValueError:
            j = None
        return r.status, j, payload, r

    def wait_running(self, key, run_id, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, j, _, _ = self.req("GET", f"/v1/runs/{run_id}", key)
            if st == 200 and j["status"] == "running":
                return True
            time.sleep(0.05)
        return False

    def wait_final(self, key, run_id, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, j, _, _ = self.req("GET", f"/v1/runs/{run_id}", key)
            if st == 200 and j["status"] not in ("created", "running"):
                return j
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not finish")


def tgz(d):
    """A directory as the CLI uploads it: a tar.gz of its contents."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for p in sorted(Path(d).rglob("*")):
            t.add(p, arcname=str(p.relative_to(d)), recursive=False)
    return buf.getvalue()


def tgz_of(entries):
    """A hand-made tar.gz: (TarInfo fields, bytes or None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        for fields, data in entries:
            ti = tarfile.TarInfo(fields.pop("name"))
            for k, v in fields.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


GZ = {"Content-Type": "application/gzip"}


def agent(tmp_path, name, script, **kw):
    d = tmp_path / name
    d.mkdir()
    m = {"name": name, "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"]}
    m.update(kw)
    (d / "agent.json").write_text(json.dumps(m))
    (d / "run.sh").write_text(script)
    return d


@pytest.fixture
def srv(tmp_path):
    s = Server(tmp_path)
    r = s.cli("init")
    assert r.returncode == 0, r.stderr
    s.owner = r.stdout.strip().splitlines()[-1]
    assert s.owner.startswith("cdn_live_") and len(s.owner) == 73
    r = s.cli("keys", "create", "bob", "--role", "member")
    assert r.returncode == 0, r.stderr
    s.member = r.stdout.strip().splitlines()[-1]
    r = s.cli("keys", "create", "eve", "--role", "owner", ws="other")
    s.other = r.stdout.strip().splitlines()[-1]
    hello = agent(tmp_path, "hello", 'echo "hi $SRV_TOKEN"; echo \'{"ok": true}\' > /workspace/output.json\n'
                  'echo report > /workspace/out/report.txt\n',
                  required_secrets=["SRV_TOKEN"])
    sleeper = agent(tmp_path, "sleeper", "echo start; sleep 30\n")
    for d in (hello, sleeper):
        assert s.cli("agent", "register", str(d)).returncode == 0
    assert s.cli("secret", "set", "SRV_TOKEN", input=SECRET).returncode == 0
    s.start()
    yield s
    s.stop(signal.SIGKILL)


def test_init_refuses_a_second_owner_key(srv):
    r = srv.cli("init")
    assert r.returncode == 125 and "owner key already" in r.stderr
    # The key is stored only as a hash.
    db = (srv.state / "cordon.db").read_bytes()
    assert srv.owner.encode() not in db and srv.owner[9:].encode() not in db


def test_authentication(srv):
    st, j, _, _ = srv.req("GET", "/v1/whoami")
    assert st == 401 and j["error"]["code"] == "unauthorized"
    st, j, _, _ = srv.req("GET", "/v1/whoami", key="cdn_live_" + "0" * 64)
    assert st == 401 and j["error"]["message"] == "unknown API key"
    st, j, _, _ = srv.req("GET", "/v1/whoami", key="nonsense")
    assert st == 401
    st, j, _, _ = srv.req("GET", "/v1/whoami", key=srv.member)
    assert st == 200 and j["role"] == "member" and j["workspace"] == "default"
    # Revoked keys stop working at once.
    kid = j["id"]
    st, _, _, _ = srv.req("DELETE", f"/v1/keys/{kid}", key=srv.owner)
    assert st == 200
    st, j, _, _ = srv.req("GET", "/v1/whoami", key=srv.member)
    assert st == 401 and "revoked" in j["error"]["message"]
    # Keys never show up in the server's log.
    assert srv.owner not in srv.log.read_text()


MEMBER_FORBIDDEN = [
    ("POST", "/v1/agents", {"path": "/tmp"}),
    ("POST", "/v1/capabilities", {"name": "c", "path": "/tmp"}),
    ("POST", "/v1/envs", {"name": "e", "vars": {"A": "1"}}),
    ("POST", "/v1/grants", {"agent": "hello", "capability": "c"}),
    ("PUT", "/v1/secrets/X_KEY", {"value": "abcdefgh"}),
    ("DELETE", "/v1/secrets/SRV_TOKEN", None),
    ("POST", "/v1/approvals/apr_x/approve", None),
    ("POST", "/v1/approvals/apr_x/reject", None),
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {"name": "x", "role": "owner"}),
    ("DELETE", "/v1/keys/cdn_live_000000000000", None),
]


@pytest.mark.parametrize("method,path,body", MEMBER_FORBIDDEN)
def test_member_cannot_use_owner_verbs(srv, method, path, body):
    st, j, _, _ = srv.req(method, path, srv.member, body=body)
    assert st == 403, (st, j)
    assert j["error"]["code"] == "forbidden"


def test_member_policy_put_is_forbidden(srv):
    st, j, _, _ = srv.req("PUT", "/v1/policy", srv.member, raw=b"version: 1\n",
                          headers={"Content-Type": "application/yaml"})
    assert st == 403


def test_member_can_run_and_read(srv):
    st, j, _, _ = srv.req("GET", "/v1/secrets", srv.member)
    assert st == 200 and [s["name"] for s in j["secrets"]] == ["SRV_TOKEN"]
    assert SECRET not in json.dumps(j)
    # No endpoint returns a secret's value, to any role.
    for key in (srv.member, srv.owner):
        st, _, payload, _ = srv.req("GET", "/v1/secrets/SRV_TOKEN", key)
        assert st == 403 and SECRET.encode() not in payload
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.member, body={"agent": "hello", "input": {"n": 1}})
    assert st == 202, j
    rec = srv.wait_final(srv.member, j["id"])
    assert rec["status"] == "succeeded"
    assert rec["result"]["output"] == {"ok": True}
    assert rec["caller"].startswith("key:cdn_live_")
    # stdout is redacted; the artifact holding the secret was not kept.
    st, _, out, _ = srv.req("GET", f"/v1/runs/{j['id']}/stdout", srv.member)
    assert st == 200 and b"[REDACTED:SRV_TOKEN]" in out and SECRET.encode() not in out
    # events, as NDJSON and as SSE
    st, _, ev, r = srv.req("GET", f"/v1/runs/{j['id']}/events", srv.member)
    assert st == 200 and r.getheader("Content-Type") == "application/x-ndjson"
    types = [json.loads(l)["type"] for l in ev.decode().splitlines()]
    assert types[0] == "run.created" and types[-1] == "run.finished"
    st, _, sse, r = srv.req("GET", f"/v1/runs/{j['id']}/events", srv.member,
                            headers={"Accept": "text/event-stream"})
    assert r.getheader("Content-Type") == "text/event-stream"
    assert sse.decode().startswith("id: 1\ndata: {") and "\n\n" in sse.decode()


def test_artifact_download(srv):
    d = agent(srv.tmp, "art", "printf 'a,b\\n1,2\\n' > /workspace/out/table.csv\n")
    assert srv.cli("agent", "register", str(d)).returncode == 0
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "art"})
    rec = srv.wait_final(srv.owner, j["id"])
    assert rec["status"] == "succeeded"
    st, _, data, r = srv.req("GET", f"/v1/runs/{j['id']}/artifacts/table.csv", srv.owner)
    assert st == 200 and data == b"a,b\n1,2\n"
    assert "attachment" in r.getheader("Content-Disposition")
    # Only listed artifacts; nothing else in the run directory.
    for name in ("result.json", "..", "%2e%2e", "..%2fresult.json", "../result.json"):
        st, _, _, _ = srv.req("GET", f"/v1/runs/{j['id']}/artifacts/{name}", srv.owner)
        assert st == 404, name


def test_workspaces_are_isolated(srv):
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "hello"})
    rid = j["id"]
    srv.wait_final(srv.owner, rid)
    for path in (f"/v1/runs/{rid}", f"/v1/runs/{rid}/events", f"/v1/runs/{rid}/stdout",
                 f"/v1/audit?run={rid}"):
        st, j, _, _ = srv.req("GET", path, srv.other)
        assert st == 404, path
    st, j, _, _ = srv.req("GET", "/v1/runs", srv.other)
    assert st == 200 and j["runs"] == []
    st, j, _, _ = srv.req("GET", "/v1/agents", srv.other)
    assert j["items"] == []
    st, j, _, _ = srv.req("GET", "/v1/secrets", srv.other)
    assert j["secrets"] == []
    st, j, _, _ = srv.req("POST", "/v1/runs/" + rid + "/cancel", srv.other)
    assert st == 404
    # The other workspace's agent of that name does not exist.
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.other, body={"agent": "hello"})
    assert st == 404


def test_bad_input(srv):
    k = srv.owner
    cases = [
        (dict(raw=b"{not json", headers={"Content-Type": "application/json"}), 400),
        (dict(raw=b"[1,2]", headers={"Content-Type": "application/json"}), 400),
        (dict(raw=b'{"agent":"hello","agent":"x"}', headers={"Content-Type": "application/json"}), 400),
        (dict(body={"agent": "hello", "input": [1]}), 400),
        (dict(body={"agent": "../etc"}), 400),
        (dict(body={"agent": "nope"}), 404),
        (dict(body={"input": {}}), 400),
        (dict(raw=b'{"agent":"hello"}', headers={"Content-Type": "text/plain"}), 415),
        (dict(raw=b"x" * (1 << 20 | 1), headers={"Content-Type": "application/json"}), 413),
    ]
    for kw, want in cases:
        st, j, _, _ = srv.req("POST", "/v1/runs", k, **kw)
        assert st == want, (kw.get("body") or kw.get("raw", b"")[:40], st, j)
        assert "error" in j and j["error"]["message"]
    for path, want in [("/v1/runs/run_doesnotexist", 404), ("/v1/runs/a%2fb", 404),
                       ("/v1/nothing", 404), ("/v1/runs/x/y/z/w", 404)]:
        st, j, _, _ = srv.req("GET", path, k)
        assert st == want, path
    st, j, _, _ = srv.req("DELETE", "/v1/runs", k)
    assert st == 405
    # Health is not on the public listener.
    st, _, _, _ = srv.req("GET", "/healthz", k)
    assert st == 404


def test_slow_client_does_not_block_others(srv):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n")
    t0 = time.time()
    st, j, _, _ = srv.req("GET", "/v1/whoami", srv.owner)
    assert st == 200 and time.time() - t0 < 2
    s.close()


def test_policy_get_put(srv):
    st, j, _, _ = srv.req("GET", "/v1/policy", srv.member)
    assert st == 200 and j["operator"]["source"] == "built-in" and j["workspace"] is None
    bad = b"version: 1\ndomains:\n  - name: x.example.com\n    bogus: 1\n"
    st, j, _, _ = srv.req("PUT", "/v1/policy", srv.owner, raw=bad,
                          headers={"Content-Type": "application/yaml"})
    assert st == 400 and "bogus" in j["error"]["message"]
    assert j["error"]["message"].startswith("policy.yaml:4: domains[0]")
    assert not (srv.state / "policies" / "default.yaml").exists()
    good = b"version: 1\ndomains:\n  - name: api.example.com\n    ports: [443]\n"
    st, j, _, _ = srv.req("PUT", "/v1/policy", srv.owner, raw=good,
                          headers={"Content-Type": "application/yaml"})
    assert st == 200 and j == {"updated": True, "dropped": ["api.example.com"]}
    st, j, _, _ = srv.req("GET", "/v1/policy", srv.member)
    assert "api.example.com" in j["workspace"]["yaml"]
    assert (srv.state / "policies" / "default.yaml").stat().st_mode & 0o777 == 0o600
    # Another workspace keeps its own (here the operator's) policy.
    st, j, _, _ = srv.req("GET", "/v1/policy", srv.other)
    assert j["operator"]["source"] == "built-in" and j["workspace"] is None


def test_owner_registry_and_keys(srv, tmp_path):
    d = agent(tmp_path, "api-made", "true\n")
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 201 and j["name"] == "api-made" and j["version"] == 1
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 200 and j["created"] is False
    st, j, _, _ = srv.req("POST", "/v1/envs", srv.owner, body={"name": "prod", "vars": {"API_TOKEN": "x"}})
    assert st == 400 and "secret" in j["error"]["message"]
    st, j, _, _ = srv.req("POST", "/v1/keys", srv.owner, body={"name": "ci", "role": "member"})
    assert st == 201 and j["key"].startswith("cdn_live_")
    st, lst, raw, _ = srv.req("GET", "/v1/keys", srv.owner)
    assert j["key"].encode() not in raw and j["key"][9:].encode() not in raw
    assert {k["name"] for k in lst["keys"]} >= {"owner", "bob", "ci"}
    st, j, _, _ = srv.req("PUT", "/v1/secrets/NEW_ONE", srv.owner, body={"value": "abcdefgh12"})
    assert st == 200 and j == {"name": "NEW_ONE", "size": 10}


def test_cancel_running_and_queued(tmp_path):
    s = Server(tmp_path, extra=["--concurrency", "1"])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    d = agent(tmp_path, "sleeper", "echo start; sleep 30\n")
    s.cli("agent", "register", str(d))
    s.start()
    try:
        ids = []
        for _ in range(2):
            st, j, _, _ = s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})
            assert st == 202
            ids.append(j["id"])
        # The first runs; the second waits (concurrency 1).
        deadline = time.time() + 20
        while time.time() < deadline:
            st, j, _, _ = s.req("GET", f"/v1/runs/{ids[0]}", s.owner)
            if j["status"] == "running":
                break
            time.sleep(0.05)
        assert s.health()["queued"] == 1
        for rid in reversed(ids):
            st, j, _, _ = s.req("POST", f"/v1/runs/{rid}/cancel", s.owner)
            assert st == 202, j
        for rid in ids:
            rec = s.wait_final(s.owner, rid, timeout=20)
            assert rec["status"] == "cancelled", rec
            assert "cancelled by key" in rec["error"]
        st, j, _, _ = s.req("POST", f"/v1/runs/{ids[0]}/cancel", s.owner)
        assert st == 409
    finally:
        assert s.stop() == 0


def test_drain_on_sigterm(tmp_path):
    s = Server(tmp_path, extra=["--concurrency", "1", "--drain-timeout", "1"])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.cli("agent", "register", str(agent(tmp_path, "sleeper", "sleep 30\n")))
    s.start()
    ids = [s.req("POST", "/v1/runs", s.owner, body={"agent": "sleeper"})[1]["id"] for _ in range(3)]
    time.sleep(1)
    t0 = time.time()
    assert s.stop() == 0
    assert time.time() - t0 < 15
    out = json.loads(s.cli("runs", "list", "--json").stdout)
    by_id = {r["id"]: r for r in out}
    assert set(ids) <= set(by_id)
    for rid in ids:
        assert by_id[rid]["status"] == "cancelled", by_id[rid]
    assert not (s.state / "serve.sock").exists()


@pytest.mark.slow
def test_restart_mid_run_loses_no_record(tmp_path):
    s = Server(tmp_path, extra=["--concurrency", "2"])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.cli("agent", "register", str(agent(tmp_path, "nap", "sleep 2; echo done\n")))
    s.start()
    ids = [s.req("POST", "/v1/runs", s.owner, body={"agent": "nap"})[1]["id"] for _ in range(4)]
    time.sleep(0.7)
    # The server dies outright: two runs are running, two are queued.
    s.stop(signal.SIGKILL)
    s.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        st, j, _, _ = s.req("GET", "/v1/runs?limit=10", s.owner)
        recs = {r["id"]: r for r in j["runs"]}
        if all(recs.get(i, {}).get("status") not in (None, "created", "running") for i in ids):
            break
        time.sleep(0.2)
    for rid in ids:
        assert rid in recs, rid
        # Started runs finish on their own; queued ones are closed with a reason.
        assert recs[rid]["status"] in ("succeeded", "error"), recs[rid]
        if recs[rid]["status"] == "error":
            assert "supervisor died" in recs[rid]["error"]
    assert sum(r["status"] == "succeeded" for r in recs.values()) >= 2
    assert s.stop() == 0


def test_cli_calls_the_api_when_cordon_url_is_set(srv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CORDON_STATE"}
    env.update(CORDON_URL=f"http://127.0.0.1:{srv.port}", CORDON_API_KEY=srv.owner,
               CORDON_STATE=str(tmp_path / "nowhere"))  # the state is the server's

    def cli(*args, key=None, input=None):
        e = dict(env)
        if key:
            e["CORDON_API_KEY"] = key
        return run([CORDON, *args], env=e, input=input, timeout=60)

    d = agent(tmp_path, "remote-agent", "echo remote; echo x > $CORDON_STEPS\n")
    r = cli("agent", "register", str(d))
    assert r.returncode == 0 and "agent remote-agent@1" in r.stdout, r.stderr
    r = cli("agent", "list", "--json")
    assert "remote-agent" in {a["name"] for a in json.loads(r.stdout)}
    r = cli("secret", "set", "REMOTE_KEY", input="remote-value-123\n")
    assert r.returncode == 0, r.stderr
    r = cli("secret", "list", "--json")
    assert {"REMOTE_KEY", "SRV_TOKEN"} <= {s["name"] for s in json.loads(r.stdout)}
    assert "remote-value" not in r.stdout
    # A member is refused the owner's verbs, with the server's message.
    r = cli("agent", "register", str(d), key=srv.member)
    assert r.returncode == 125 and "cannot register" in r.stderr and "403" in r.stderr
    r = cli("keys", "create", "x", key=srv.member)
    assert r.returncode == 125 and "403" in r.stderr
    # Runs dispatched over the API show up, with logs.
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.member, body={"agent": "remote-agent"})
    srv.wait_final(srv.owner, j["id"])
    r = cli("runs", "list", "--json", key=srv.member)
    assert j["id"] in {x["id"] for x in json.loads(r.stdout)}
    r = cli("runs", "show", j["id"])
    assert json.loads(r.stdout)["status"] == "succeeded"
    r = cli("logs", "--json", j["id"])
    assert [json.loads(l)["type"] for l in r.stdout.splitlines()][-1] == "run.finished"
    r = cli("logs", "--follow", j["id"])
    assert r.returncode == 0 and "succeeded" in r.stdout
    r = cli("approvals", "list", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = cli("keys", "create", "ci", "--role", "member")
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1].startswith("cdn_live_")
    # Without a key, a clear error; the key never comes from a flag.
    e = dict(env)
    del e["CORDON_API_KEY"]
    r = run([CORDON, "agent", "list"], env=e)
    assert r.returncode == 125 and "CORDON_API_KEY" in r.stderr
    assert not (tmp_path / "nowhere").exists()


def test_evidence_pack_over_the_api(srv, tmp_path):
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.member, body={"agent": "hello"})
    rid = j["id"]
    srv.wait_final(srv.member, rid)
    st, _, pack, r = srv.req("GET", f"/v1/runs/{rid}/evidence", srv.member)
    assert st == 200 and r.getheader("Content-Type") == "application/gzip"
    p = tmp_path / "pack.tar.gz"
    p.write_bytes(pack)
    v = srv.cli("evidence", "verify", "--json", str(p))
    assert v.returncode == 0, v.stdout + v.stderr
    assert SECRET.encode() not in pack
    st, _, _, _ = srv.req("GET", f"/v1/runs/{rid}/evidence", srv.other)
    assert st == 404
    # Nothing staged is left behind.
    assert not list((srv.state / "tmp").glob("evidence-*"))


def test_every_endpoint_under_every_role(srv, tmp_path):
    """The role matrix, endpoint by endpoint: what owners may, what members
    may, and that the other workspace's key sees none of this one."""
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "hello"})
    rid = j["id"]
    srv.wait_final(srv.owner, rid)
    d = agent(tmp_path, "matrix", "true\n")
    yaml = b"version: 1\ndomains:\n  - name: api.example.com\n    ports: [443]\n"
    # (method, path, body or raw, owner, member, other workspace)
    rows = [
        ("GET", "/v1/whoami", None, 200, 200, 200),
        ("GET", "/v1/agents", None, 200, 200, 200),
        ("GET", "/v1/agents/hello", None, 200, 200, 404),
        ("GET", "/v1/capabilities", None, 200, 200, 200),
        ("GET", "/v1/envs", None, 200, 200, 200),
        ("POST", "/v1/agents", tgz(d), 201, 403, 201),
        ("POST", "/v1/envs", {"name": "m", "vars": {"REGION": "eu"}}, 201, 403, 201),
        ("POST", "/v1/capabilities?name=c", tgz(d), 201, 403, 201),
        ("POST", "/v1/grants", {"agent": "matrix", "capability": "c"}, 200, 403, 200),
        ("GET", "/v1/secrets", None, 200, 200, 200),
        ("PUT", "/v1/secrets/MATRIX_KEY", {"value": "abcdefgh"}, 200, 403, 200),
        ("GET", "/v1/secrets/MATRIX_KEY", None, 403, 403, 403),
        ("DELETE", "/v1/secrets/MATRIX_KEY", None, 200, 403, 200),
        ("GET", "/v1/runs", None, 200, 200, 200),
        ("GET", f"/v1/runs/{rid}", None, 200, 200, 404),
        ("GET", f"/v1/runs/{rid}/events", None, 200, 200, 404),
        ("GET", f"/v1/runs/{rid}/stdout", None, 200, 200, 404),
        ("GET", f"/v1/runs/{rid}/stderr", None, 200, 200, 404),
        ("GET", f"/v1/runs/{rid}/evidence", None, 200, 200, 404),
        ("POST", f"/v1/runs/{rid}/cancel", None, 409, 409, 404),
        ("GET", "/v1/approvals", None, 200, 200, 200),
        ("POST", "/v1/approvals/apr_none/approve", None, 404, 403, 404),
        ("POST", "/v1/approvals/apr_none/reject", None, 404, 403, 404),
        ("GET", f"/v1/audit?run={rid}", None, 200, 200, 404),
        ("GET", "/v1/policy", None, 200, 200, 200),
        ("PUT", "/v1/policy", yaml, 200, 403, 200),  # each its own workspace's
        # what only the operator decides: refused to every role
        ("PUT", "/v1/policy", b"version: 1\nenforce: false\n", 400, 403, 400),
        ("PUT", "/v1/policy", b"version: 1\nprivate: [127.0.0.1:1]\n", 400, 403, 400),
        ("PUT", "/v1/policy", b"version: 1\napprovals: {timeout_seconds: 9}\n", 400, 403, 400),
        ("PUT", "/v1/policy", b"version: 1\nlimits: {requests_per_minute: 0}\n", 400, 403, 400),
        ("DELETE", "/v1/policy", None, 405, 405, 405),
        ("POST", "/v1/whoami", None, 405, 405, 405),
        ("GET", "/v1/keys", None, 200, 403, 200),
        ("POST", "/v1/keys", {"name": "mx", "role": "member"}, 201, 403, 201),
    ]
    for method, path, body, *want in rows:
        for key, expect in zip((srv.owner, srv.member, srv.other), want):
            kw = {}
            if isinstance(body, bytes):
                ctype = "application/yaml" if path == "/v1/policy" else "application/gzip"
                kw = dict(raw=body, headers={"Content-Type": ctype})
            elif body is not None:
                kw = dict(body=body)
            st, j, _, _ = srv.req(method, path, key, **kw)
            assert st == expect, (method, path, key[:16], st, j)
            if st >= 400:
                assert j["error"]["code"] and j["error"]["message"]
    # Without a key, every one of them is 401.
    for method, path, *_ in rows:
        st, j, _, _ = srv.req(method, path)
        assert st == 401, (method, path, st)

    # The policy's levels: each key sees the operator's policy, its own
    # workspace's (the last one written there) and the effective rules;
    # no server path in any of it.
    for key, ws_yaml in ((srv.owner, yaml), (srv.member, yaml), (srv.other, yaml)):
        st, j, raw, _ = srv.req("GET", "/v1/policy", key)
        assert st == 200 and j["operator"]["source"] == "built-in"
        assert j["workspace"]["yaml"] == ws_yaml.decode()
        assert j["workspace"]["dropped"] == ["api.example.com"]
        assert j["effective"]["enforce"] is True and j["effective"]["private"] == []
        assert str(srv.state).encode() not in raw

    # The queue quotas, by role and workspace: an owner's and a member's
    # runs share their workspace's quota; the other workspace has its own.
    srv.stop()
    srv.extra = ["--concurrency", "1", "--queue", "8", "--workspace-queue", "2",
                 "--drain-timeout", "1"]
    (tmp_path / "o").mkdir()
    assert srv.cli("agent", "register", str(agent(tmp_path / "o", "sleeper", "sleep 30\n")),
                   ws="other").returncode == 0
    srv.start()
    try:
        sleeper = lambda key: srv.req("POST", "/v1/runs", key, body={"agent": "sleeper"})
        ids = [sleeper(srv.owner)[1]["id"]]  # runs
        assert srv.wait_running(srv.owner, ids[0])
        assert sleeper(srv.owner)[0] == 202  # waits: 1 of 2
        assert sleeper(srv.member)[0] == 202  # waits: 2 of 2
        for key in (srv.owner, srv.member):
            st, j, _, _ = sleeper(key)
            assert st == 503 and "workspace default has 2 runs waiting" in j["error"]["message"], j
        st, j, _, _ = sleeper(srv.other)
        assert st == 202, j  # the other workspace is not held back
    finally:
        srv.stop(signal.SIGTERM)


def test_register_by_upload_and_the_path_gate(srv, tmp_path):
    """Owners upload bundles; a path on the server is refused unless the
    operator named a root, so an owner cannot read the server's files."""
    d = agent(tmp_path, "up", "echo up > $CORDON_STEPS\n")
    (d / "tool").write_text("#!/bin/sh\n")
    (d / "tool").chmod(0o755)
    (d / "sub").mkdir()
    (d / "sub" / "data.txt").write_text("x")
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 201, j
    # The same tree registered locally has the same hash: modes and layout kept.
    local = tmp_path / "local-state"
    local.mkdir(mode=0o700)
    r = run([CORDON, "agent", "register", "--json", str(d)],
            env={k: v for k, v in dict(os.environ, CORDON_STATE=str(local)).items()
                 if k not in ("CORDON_URL", "CORDON_API_KEY")})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == j["sha256"]
    # It runs.
    st, run_j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "up"})
    assert srv.wait_final(srv.owner, run_j["id"])["status"] == "succeeded"

    # A server path: off by default, whatever the path.
    for body in ({"path": "/etc"}, {"path": str(d)}):
        st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, body=body)
        assert st == 403 and "--register-root" in j["error"]["message"], j
    st, j, _, _ = srv.req("POST", "/v1/capabilities", srv.owner,
                          body={"name": "etc", "path": "/etc"})
    assert st == 403

    # Hostile archives: each refused with a reason, nothing left behind.
    ok_manifest = json.dumps({"name": "evil", "version": "1",
                              "entrypoint": ["/bin/true"]}).encode()
    attacks = {
        "absolute": [({"name": "/etc/evil"}, b"x")],
        "dotdot": [({"name": "agent.json"}, ok_manifest), ({"name": "../escape"}, b"x")],
        "inner-dotdot": [({"name": "agent.json"}, ok_manifest), ({"name": "a/../../x"}, b"x")],
        "symlink": [({"name": "agent.json"}, ok_manifest),
                    ({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/shadow"}, None)],
        "hardlink": [({"name": "agent.json"}, ok_manifest),
                     ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "agent.json"}, None)],
        "device": [({"name": "agent.json"}, ok_manifest),
                   ({"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)],
        "fifo": [({"name": "agent.json"}, ok_manifest), ({"name": "p", "type": tarfile.FIFOTYPE}, None)],
        "twice": [({"name": "agent.json"}, ok_manifest), ({"name": "agent.json"}, ok_manifest)],
        "file-then-dir": [({"name": "agent.json"}, ok_manifest), ({"name": "a"}, b"x"),
                          ({"name": "a/b"}, b"y")],
        "control-char": [({"name": "agent.json"}, ok_manifest), ({"name": "a\x01b"}, b"x")],
    }
    for what, entries in attacks.items():
        st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz_of(entries), headers=GZ)
        assert st == 400, (what, st, j)
        assert j["error"]["message"].startswith("bundle: "), (what, j)
    assert not (tmp_path.parent / "escape").exists() and not (srv.state / "escape").exists()
    # Not an archive, a gzip bomb's worth over the limit, an empty body.
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=b"not a tar", headers=GZ)
    assert st == 400 and "tar" in j["error"]["message"]
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=os.urandom(33 << 20), headers=GZ)
    assert st == 413
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=b"", headers=GZ)
    assert st == 400
    # A capability upload needs its name; a member may not upload.
    st, j, _, _ = srv.req("POST", "/v1/capabilities", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 400 and "name" in j["error"]["message"]
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.member, raw=tgz(d), headers=GZ)
    assert st == 403
    # Only an owner's key gets the bundle-sized body: without one, 2 MiB is
    # over the usual 1 MiB bound before anything else is looked at.
    for key in (None, srv.member, "cdn_live_" + "0" * 64):
        st, j, _, _ = srv.req("POST", "/v1/agents", key, raw=os.urandom(2 << 20), headers=GZ)
        assert st == 413, (key, st, j)
    # No scratch directory is left in the state.
    assert not [p for p in (srv.state / "tmp").iterdir() if p.name.startswith("u.")]


def test_uploads_carry_links_inside_the_tree_and_refuse_the_rest(srv, tmp_path):
    """Issue 12: an upload accepts the links a local registration does (same
    hash), its run sees them, and the links a local registration refuses
    are refused from a tar too: by the unpacking where the archive alone
    shows it, by the registry's walk of the unpacked tree otherwise."""
    d = agent(tmp_path, "npm", "/agent/node_modules/.bin/hi; cat /agent/lib64/x.txt\n")
    (d / "node_modules" / "hi").mkdir(parents=True)
    (d / "node_modules" / "hi" / "cli.sh").write_text("#!/bin/sh\necho hi from cli\n")
    (d / "node_modules" / "hi" / "cli.sh").chmod(0o755)
    (d / "node_modules" / ".bin").mkdir()
    (d / "node_modules" / ".bin" / "hi").symlink_to("../hi/cli.sh")
    (d / "lib").mkdir()
    (d / "lib" / "x.txt").write_text("through lib64\n")
    (d / "lib64").symlink_to("lib")
    # Inside only because "deep" is two levels down: a check of the text
    # alone ("one down, two up") would refuse what the kernel resolves.
    (d / "lib" / "sub").mkdir()
    (d / "deep").symlink_to("lib/sub")
    (d / "back").symlink_to("deep/../../agent.json")
    local = tmp_path / "local-state"
    local.mkdir(mode=0o700)
    env = {k: v for k, v in dict(os.environ, CORDON_STATE=str(local)).items()
           if k not in ("CORDON_URL", "CORDON_API_KEY")}
    r = run([CORDON, "agent", "register", "--json", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    want = json.loads(r.stdout)["sha256"]
    # The CLI's upload (bundle_pack) and a tar made by Python's tarfile.
    remote = dict(env, CORDON_URL=f"http://127.0.0.1:{srv.port}", CORDON_API_KEY=srv.owner)
    r = run([CORDON, "agent", "register", "--json", str(d)], env=remote)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == want
    st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=tgz(d), headers=GZ)
    assert st == 200 and j["sha256"] == want and not j["created"], j  # the same tree again
    st, run_j, _, _ = srv.req("POST", "/v1/runs", srv.owner, body={"agent": "npm"})
    fin = srv.wait_final(srv.owner, run_j["id"])
    assert fin["status"] == "succeeded", fin
    out = (srv.state / "runs" / run_j["id"] / "stdout").read_text()
    assert out == "hi from cli\nthrough lib64\n", out

    ok_manifest = json.dumps({"name": "evil", "version": "1",
                              "entrypoint": ["/bin/true"]}).encode()
    SYM, DIR = tarfile.SYMTYPE, tarfile.DIRTYPE
    attacks = {
        # (entries, what the message names)
        "absolute": ([({"name": "py", "type": SYM, "linkname": "/usr/bin/python3"}, None)],
                     "'py'"),
        "dotdot": ([({"name": "a", "type": DIR}, None),
                    ({"name": "a/pw", "type": SYM, "linkname": "../../etc/passwd"}, None)],
                   "a/pw: is a symlink to '../../etc/passwd' and its target leaves the tree"),
        "through a link": ([({"name": "up", "type": SYM, "linkname": "."}, None),
                            ({"name": "a", "type": DIR}, None),
                            ({"name": "a/up", "type": SYM, "linkname": "../up"}, None),
                            ({"name": "a/out", "type": SYM, "linkname": "up/../x"}, None)],
                           "a/out: is a symlink"),
        "dangling": ([({"name": "gone", "type": SYM, "linkname": "nothing"}, None)],
                     "gone: is a symlink"),
        "below a link": ([({"name": "l", "type": SYM, "linkname": "."}, None),
                          ({"name": "l/x"}, b"x")], "'l' is a symlink"),
        "link then file": ([({"name": "l", "type": SYM, "linkname": "agent.json"}, None),
                            ({"name": "l"}, b"x")], "twice"),
    }
    for what, (entries, needle) in attacks.items():
        body = tgz_of([({"name": "agent.json"}, ok_manifest)] + entries)
        st, j, _, _ = srv.req("POST", "/v1/agents", srv.owner, raw=body, headers=GZ)
        assert st == 400, (what, st, j)
        assert needle in j["error"]["message"], (what, j)
        assert "/tmp/" not in j["error"]["message"], (what, j)  # no server path
    assert not [p for p in (srv.state / "tmp").iterdir() if p.name.startswith("u.")]
    names = {a["name"] for a in srv.req("GET", "/v1/agents", srv.owner)[1]["items"]}
    assert "evil" not in names


def test_register_root_allows_paths_below_it_only(tmp_path):
    root = tmp_path / "bundles"
    root.mkdir()
    s = Server(tmp_path, extra=["--register-root", str(root)])
    s.owner = s.cli("init").stdout.strip().splitlines()[-1]
    s.start()
    inside = agent(root, "inside", "true\n")
    outside = agent(tmp_path, "outside", "true\n")
    (root / "sneaky").symlink_to(outside)
    st, j, _, _ = s.req("POST", "/v1/agents", s.owner, body={"path": str(inside)})
    assert st == 201, j
    for p in (str(outside), str(root / "sneaky"), str(root / ".." / "outside"), "/etc"):
        st, j, _, _ = s.req("POST", "/v1/agents", s.owner, body={"path": p})
        assert st == 403, (p, st, j)
    assert s.stop() == 0


def test_dashboard_assets_are_modules_under_a_strict_csp(srv):
    """The dashboard is native ES modules, compiled into the binary: the
    page loads app.js as a module, every module it imports (followed from
    app.js) is served as JavaScript, and every answer carries the strict CSP
    (scripts of this origin only: no inline script)."""
    import re
    st, _, page, r = srv.req("GET", "/")
    assert st == 200 and r.getheader("Content-Type").startswith("text/html")
    csp = r.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    scripts = re.findall(rb"<script[^>]*>", page)
    assert scripts == [b'<script type="module" src="/app.js">'], scripts
    assert not re.search(rb"<script[^>]*>[^<\s]", page)  # no inline script
    seen, todo = set(), ["/app.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        st, _, js, r = srv.req("GET", path)
        assert st == 200, path
        assert r.getheader("Content-Type") == "text/javascript; charset=utf-8", path
        assert r.getheader("Content-Security-Policy") == csp
        assert r.getheader("X-Content-Type-Options") == "nosniff"
        for dep in re.findall(rb'^import [^;]* from "\./([a-z]+\.js)";$', js, re.M):
            todo.append("/" + dep.decode())
    assert {"/app.js", "/api.js", "/dom.js", "/runs.js", "/run.js"} <= seen, seen
    st, j, _, _ = srv.req("GET", "/nope.js")
    assert st == 404
    st, j, _, r = srv.req("POST", "/app.js")
    assert st == 405 and r.getheader("Allow") == "GET, HEAD"


def rfc3339(t):
    """Unix seconds as RFC 3339 with milliseconds, in UTC."""
    import datetime
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def test_runs_list_by_date_range(srv):
    """since (inclusive) and until (exclusive) select runs by creation time,
    page with the cursor, and are parsed strictly."""
    from urllib.parse import quote
    marks, ids = [], []
    for _ in range(3):
        marks.append(time.time())
        time.sleep(0.05)
        st, j, _, _ = srv.req("POST", "/v1/runs", srv.member, body={"agent": "hello"})
        assert st == 202, j
        ids.append(j["id"])
        time.sleep(0.05)
    a, b, c = ids

    def ls(q):
        st, j, _, _ = srv.req("GET", "/v1/runs?" + q, srv.member)
        assert st == 200, j
        return [r["id"] for r in j["runs"]], j["next_cursor"]

    t0, t1, t2 = (quote(rfc3339(m)) for m in marks)
    assert ls(f"since={t1}") == ([c, b], None)
    assert ls(f"until={t1}") == ([a], None)
    assert ls(f"since={t1}&until={t2}") == ([b], None)
    assert ls(f"since={t0}")[0] == [c, b, a]
    # The same instant with an offset.
    import datetime
    local = datetime.datetime.fromtimestamp(marks[1], datetime.timezone(datetime.timedelta(hours=2)))
    assert ls("since=" + quote(local.isoformat(timespec="milliseconds")))[0] == [c, b]
    # Pages: the cursor and the range together.
    got, cur = ls(f"since={t0}&limit=1")
    assert got == [c] and cur
    got, cur = ls(f"since={t0}&limit=1&cursor={quote(cur)}")
    assert got == [b] and cur
    got, cur = ls(f"since={t0}&limit=1&cursor={quote(cur)}")
    assert got == [a]
    got, cur = ls(f"until={t2}&limit=1")
    assert got == [b] and cur
    assert ls(f"until={t2}&limit=1&cursor={quote(cur)}")[0] == [a]
    # Another workspace's key sees none of them.
    st, j, _, _ = srv.req("GET", f"/v1/runs?since={t0}", srv.other)
    assert st == 200 and j["runs"] == []

    bad = {
        "since=yesterday": "since: expected an RFC 3339 time",
        "since=2024-05-01": "since: expected an RFC 3339 time",
        "until=2024-05-01T10:00:00": "until: the time needs its offset",
        "since=2023-02-29T00:00:00Z": "since: no such day in that month",
        "since=2024-05-01T25:00:00Z": "since: the time of day is out of range",
        "since=1969-12-31T23:59:59Z": "since: a time after 1970",
        f"since={t2}&until={t1}": "since must be before until",
        f"since={t1}&until={t1}": "since must be before until",
        "since=" + "9" * 65: "since: expected an RFC 3339 time",
        "since=2024-05-01T10:00:00Z%20": "since: expected an RFC 3339 time",
    }
    for q, msg in bad.items():
        st, j, _, _ = srv.req("GET", "/v1/runs?" + q, srv.member)
        assert st == 400 and j["error"]["code"] == "bad_request", (q, st, j)
        assert j["error"]["message"].startswith(msg), (q, j["error"]["message"])
    for rid in ids:
        srv.wait_final(srv.owner, rid)


def read_chunks(srv, path, key, timeout=60):
    """GET path and read the body as it comes: [(seconds, bytes)], response."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    c.request("GET", path, headers={"Authorization": "Bearer " + key})
    r = c.getresponse()
    t0, chunks = time.time(), []
    if r.status == 200:
        while chunk := r.read1(65536):
            chunks.append((time.time() - t0, chunk))
    else:
        chunks.append((0, r.read()))
    c.close()
    return chunks, r


def test_output_follow_streams_while_the_run_goes_on(srv, tmp_path):
    """stdout?follow=1 sends what the agent wrote while it still runs, ends
    when the run has, never holds a secret's value (not even half of one
    written across a pause), and resumes from an offset."""
    half = len(SECRET) // 2
    slow = agent(tmp_path, "slow", (
        "echo first line\n"
        "echo to stderr >&2\n"
        "sleep 2\n"
        f"printf 'token: %s' \"$(printf %s \"$SRV_TOKEN\" | cut -c1-{half})\"\n"
        "sleep 1\n"
        f"printf '%s\\n' \"$(printf %s \"$SRV_TOKEN\" | cut -c{half + 1}-)\"\n"
        "echo last line\n"
        "sleep 1\n"), required_secrets=["SRV_TOKEN"])
    assert srv.cli("agent", "register", str(slow)).returncode == 0
    st, j, _, _ = srv.req("POST", "/v1/runs", srv.member, body={"agent": "slow"})
    assert st == 202
    rid = j["id"]
    chunks, r = read_chunks(srv, f"/v1/runs/{rid}/stdout?follow=1", srv.member)
    assert r.status == 200 and r.getheader("Content-Type") == "text/plain; charset=utf-8"
    body = b"".join(c for _, c in chunks)
    assert body == b"first line\ntoken: [REDACTED:SRV_TOKEN]\nlast line\n", body
    assert SECRET[:half].encode() not in body and SECRET[half:].encode() not in body
    # The first line came seconds before the end: it was streamed.
    first = next(t for t, c in chunks if b"first line" in c)
    assert chunks[-1][0] - first > 1.5, chunks
    # The follower ended because the run did; the file says the same.
    rec = srv.wait_final(srv.member, rid, timeout=5)
    assert rec["status"] == "succeeded"
    st, _, whole, _ = srv.req("GET", f"/v1/runs/{rid}/stdout", srv.member)
    assert st == 200 and whole == body
    # Resuming: only the bytes after the offset; a finished run ends at once.
    chunks, r = read_chunks(srv, f"/v1/runs/{rid}/stdout?follow=1&offset=11", srv.member)
    assert b"".join(c for _, c in chunks) == body[11:]
    chunks, r = read_chunks(srv, f"/v1/runs/{rid}/stderr?follow=true", srv.member)
    assert b"".join(c for _, c in chunks) == b"to stderr\n"
    # Another workspace's key: 404, streamed or not.
    st, _, _, _ = srv.req("GET", f"/v1/runs/{rid}/stdout?follow=1", srv.other)
    assert st == 404
    # Strict parameters.
    for q, msg in (("follow=yes", "follow:"), ("follow=1&offset=-1", "offset:"),
                   ("follow=1&offset=1e3", "offset:"), ("follow=1&offset=" + "9" * 16, "offset:"),
                   ("offset=5", "offset: only with follow=1")):
        st, j, _, _ = srv.req("GET", f"/v1/runs/{rid}/stdout?{q}", srv.member)
        assert st == 400 and j["error"]["message"].startswith(msg), (q, j)


def test_agent_versions_and_manifests(srv, tmp_path):
    """GET /v1/agents/{name}: every version newest first, each with its
    content hash and manifest; 404 for another workspace or no agent."""
    d = agent(tmp_path, "versioned", "echo one\n", description="first")
    assert srv.cli("agent", "register", str(d)).returncode == 0
    m = json.loads((d / "agent.json").read_text())
    m["description"] = "second"
    (d / "agent.json").write_text(json.dumps(m))
    assert srv.cli("agent", "register", str(d)).returncode == 0
    st, items, _, _ = srv.req("GET", "/v1/agents", srv.member)
    latest = [i for i in items["items"] if i["name"] == "versioned"][0]
    st, j, raw, _ = srv.req("GET", "/v1/agents/versioned", srv.member)
    assert st == 200, j
    assert j["name"] == "versioned" and j["latest"] == 2 and j["truncated"] is False
    assert [v["version"] for v in j["versions"]] == [2, 1]
    assert [v["manifest"]["description"] for v in j["versions"]] == ["second", "first"]
    v2 = j["versions"][0]
    assert v2["sha256"] == latest["sha256"] and v2["registered"] == latest["registered"]
    assert len(v2["tree_sha256"]) == 64 and v2["sha256"] != j["versions"][1]["sha256"]
    assert str(srv.state).encode() not in raw
    for key, path in ((srv.other, "/v1/agents/versioned"), (srv.member, "/v1/agents/nobody")):
        st, j, _, _ = srv.req("GET", path, key)
        assert st == 404 and j["error"]["code"] == "not_found"
