# SPDX-License-Identifier: Apache-2.0
"""Local stand-ins for the package registries (docs/deps.md), for the
dependency tests and bench/deps: nothing leaves loopback.

- NpmRegistry: an npm registry serving packages made here (a packument at
  /NAME, the tarball at /NAME/-/NAME-VERSION.tgz), and package_lock() writes
  the package.json and package-lock.json (lockfileVersion 3, with resolved
  URLs and sha512 integrity) npm ci installs from it.
- PyIndex: a PEP 503 simple index of wheels made here, served by Python's
  own http.server (its directory listings are the index pages).

Both log every request, so a test can tell that a cached layer was used
and the registry was not asked.
"""
import base64
import functools
import hashlib
import io
import json
import os
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


def npm_tarball(name, version, files):
    """A package tarball: package/package.json and the given files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as tf:
        pj = {"name": name, "version": version, "main": "index.js", "license": "MIT"}
        for path, data in [("package.json", json.dumps(pj).encode()), *files.items()]:
            if isinstance(data, str):
                data = data.encode()
            ti = tarfile.TarInfo("package/" + path)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


class _NpmHandler(_Quiet):
    def do_GET(self):
        self.server.log.append((self.command, self.path))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        ctype = "application/json" if not self.path.endswith(".tgz") else "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def do_POST(self):
        self.server.log.append((self.command, self.path))
        self.send_error(405)

    do_PUT = do_DELETE = do_POST


class NpmRegistry:
    def __init__(self, host="127.0.0.1"):
        self.httpd = ThreadingHTTPServer((host, 0), _NpmHandler)
        self.httpd.files = {}
        self.httpd.log = []
        self.host = host
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        self.packages = {}
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def log(self):
        return self.httpd.log

    def publish(self, name, version, files):
        tgz = npm_tarball(name, version, files)
        tarball = f"{self.url}{name}/-/{name}-{version}.tgz"
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
        self.httpd.files[f"/{name}/-/{name}-{version}.tgz"] = tgz
        doc = {"name": name, "dist-tags": {"latest": version},
               "versions": {version: {"name": name, "version": version,
                                      "dist": {"tarball": tarball, "integrity": integrity,
                                               "shasum": hashlib.sha1(tgz).hexdigest()}}}}
        self.httpd.files[f"/{name}"] = json.dumps(doc).encode()
        self.packages[name] = (version, tarball, integrity)

    def package_lock(self, directory, names, app="agent"):
        """package.json and package-lock.json in directory, depending on names."""
        deps = {n: self.packages[n][0] for n in names}
        pj = {"name": app, "version": "1.0.0", "dependencies": deps}
        lock = {"name": app, "version": "1.0.0", "lockfileVersion": 3, "requires": True,
                "packages": {"": {"name": app, "version": "1.0.0", "dependencies": deps}}}
        for n in names:
            v, url, integ = self.packages[n]
            lock["packages"][f"node_modules/{n}"] = {"version": v, "resolved": url,
                                                     "integrity": integ, "license": "MIT"}
        with open(os.path.join(directory, "package.json"), "w") as f:
            json.dump(pj, f, indent=2)
        with open(os.path.join(directory, "package-lock.json"), "w") as f:
            json.dump(lock, f, indent=2)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_wheel(directory, name, version, files):
    """A pure-Python wheel: the files, and the dist-info (METADATA, WHEEL, RECORD)."""
    dist = f"{name}-{version}.dist-info"
    entries = dict(files)
    entries[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    entries[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: cordon-tests\n"
                                "Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for path, data in entries.items():
        data = data.encode() if isinstance(data, str) else data
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    entries[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, data in entries.items():
            z.writestr(p, data)
    return path


class _IndexHandler(_Quiet):
    def do_GET(self):
        self.server.log.append((self.command, self.path))
        super().do_GET()

    def do_HEAD(self):
        self.server.log.append((self.command, self.path))
        super().do_HEAD()


class PyIndex:
    """root/simple/NAME/NAME-V-py3-none-any.whl behind http.server."""

    def __init__(self, root, host="127.0.0.1"):
        self.root = str(root)
        os.makedirs(os.path.join(self.root, "simple"), exist_ok=True)
        handler = functools.partial(_IndexHandler, directory=self.root)
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.log = []
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/simple/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def log(self):
        return self.httpd.log

    def publish(self, name, version, files):
        d = os.path.join(self.root, "simple", name)
        os.makedirs(d, exist_ok=True)
        return make_wheel(d, name, version, files)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
