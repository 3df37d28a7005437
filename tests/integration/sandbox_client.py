# SPDX-License-Identifier: Apache-2.0
"""Runs inside the sandbox: talks to the egress proxy and DNS filter.

usage: client.py raw HEX            send raw bytes to the proxy, print the reply head
       client.py get URL [K:V...]   GET through the proxy (urllib + *_proxy env)
       client.py post URL BODY      POST through the proxy
       client.py connect HOST:PORT MSG   CONNECT, then echo MSG through the tunnel
       client.py dns NAME [TYPE]    ask 127.0.0.1:53, print rcode and answers
       client.py direct HOST PORT   connect directly, ignoring the proxy
"""
import binascii
import json
import os
import random
import socket
import struct
import sys
import urllib.error
import urllib.request

PROXY = ("127.0.0.1", 3128)


def reply_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def cmd_raw(hexdata):
    s = socket.create_connection(PROXY, timeout=10)
    s.sendall(binascii.unhexlify(hexdata))
    head = reply_head(s).split(b"\r\n\r\n")[0].decode("latin-1")
    lines = head.split("\r\n")
    block = [l for l in lines if l.lower().startswith("x-cordon-block")]
    print(lines[0] if lines else "NO REPLY")
    print(block[0] if block else "x-cordon-block: none")


def cmd_get(url, *hdrs, data=None):
    req = urllib.request.Request(url, data=data)
    for h in hdrs:
        k, v = h.split(":", 1)
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            print(r.status)
            print(r.read().decode("latin-1"))
    except urllib.error.HTTPError as e:
        print(e.code)
        print(e.headers.get("X-Cordon-Block", "none"))
        print(e.headers.get("Retry-After", "-"))
        print(e.read().decode("latin-1"))


def client_hello(name):
    """The bytes of a real TLS ClientHello naming `name` (or none when empty)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=name or None)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def cmd_connect(target, msg):
    """CONNECT, then send msg (or, for "hello:NAME", a TLS ClientHello naming
    NAME) and print what comes back, decoded or as its length."""
    s = socket.create_connection(PROXY, timeout=10)
    host, port = target.rsplit(":", 1)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = reply_head(s)
    status = head.split(b"\r\n")[0].decode()
    print(status)
    if " 200 " in status:
        data = client_hello(msg[6:]) if msg.startswith("hello:") else msg.encode()
        s.sendall(data)
        got = b""
        try:
            while len(got) < len(data):
                c = s.recv(65536)
                if not c:
                    break
                got += c
        except OSError:
            pass
        if msg.startswith("hello:"):
            print("echoed" if got == data else f"not echoed ({len(got)} bytes)")
        else:
            print(got.decode())
    else:
        print([l for l in head.decode("latin-1").split("\r\n") if l.lower().startswith("x-cordon-block")])


def cmd_dns(name, qtype="A"):
    t = {"A": 1, "AAAA": 28, "TXT": 16, "MX": 15, "ANY": 255}[qtype]
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", t, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q, ("127.0.0.1", 53))
    try:
        r, _ = s.recvfrom(4096)
    except socket.timeout:
        print("TIMEOUT")
        return
    rid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", r[:12])
    print("rcode", flags & 0xF, "answers", an, "id-ok", rid == qid)
    off = 12 + len(q) - 12
    for _ in range(an):
        off += 2  # name pointer
        rtype, rclass, ttl, rdlen = struct.unpack(">HHIH", r[off:off + 10])
        off += 10
        rdata = r[off:off + rdlen]
        off += rdlen
        fam = socket.AF_INET if rtype == 1 else socket.AF_INET6
        print("answer", socket.inet_ntop(fam, rdata), "ttl", ttl)


def cmd_direct(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=5)
        print("CONNECTED")
    except OSError as e:
        print("FAILED", e.errno, e.strerror)


if __name__ == "__main__":
    op, args = sys.argv[1], sys.argv[2:]
    if op == "raw":
        cmd_raw(*args)
    elif op == "get":
        cmd_get(*args)
    elif op == "post":
        cmd_get(args[0], *args[2:], data=args[1].encode())
    elif op == "connect":
        cmd_connect(*args)
    elif op == "dns":
        cmd_dns(*args)
    elif op == "direct":
        cmd_direct(*args)
