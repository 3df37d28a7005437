# SPDX-License-Identifier: Apache-2.0
"""The client: one method per operation of docs/api/openapi.yaml, grouped by
resource. The standard library only: urllib for the API, http.client over a
unix socket for the server's health and metrics."""

from __future__ import annotations

import codecs
import http.client
import io
import json
import os
import socket
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ._errors import CordonError, error_for
from ._operations import OPERATIONS
from ._version import __version__

Json = dict[str, Any]
"""A JSON object as the API returns it."""

DEFAULT_URL = "http://127.0.0.1:8470"
# created (queued) and running are the only statuses that are not final
_PENDING = frozenset({"created", "running"})


def pack_directory(directory: str | os.PathLike[str]) -> bytes:
    """The contents of ``directory`` (not the directory itself) as a tar.gz,
    as ``cordon agent register DIR`` uploads it: regular files, directories and
    symlinks, paths relative to it."""
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            if not (path.is_symlink() or path.is_file() or path.is_dir()):
                raise ValueError(f"{path}: not a regular file, directory or symlink "
                                 "(an agent's tree holds only those)")
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def _bundle(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    data = source if isinstance(source, bytes) else pack_directory(source)
    kind = "application/gzip" if data[:2] == b"\x1f\x8b" else "application/x-tar"
    return data, kind


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Client:
    """The client of one ``cordon serve``.

    ``base_url`` defaults to ``$CORDON_URL``, else http://127.0.0.1:8470; the
    key (keyword only) to ``$CORDON_API_KEY``; ``socket_path``, for
    :meth:`health` and :meth:`metrics`, to ``$CORDON_STATE/serve.sock``.
    ``timeout`` bounds each read, in seconds (an event stream gets a
    keep-alive every 15 s)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 socket_path: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = (base_url or os.environ.get("CORDON_URL") or DEFAULT_URL).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("CORDON_API_KEY")
        state = os.environ.get("CORDON_STATE")
        self.socket_path = socket_path or (os.path.join(state, "serve.sock") if state else None)
        self.timeout = timeout
        self.keys = Keys(self)
        self.agents = Agents(self)
        self.capabilities = Capabilities(self)
        self.envs = Envs(self)
        self.grants = Grants(self)
        self.secrets = Secrets(self)
        self.runs = Runs(self)
        self.approvals = Approvals(self)
        self.audit = Audit(self)
        self.policy = Policy(self)
        self.schedules = Schedules(self)
        self.services = Services(self)
        self.usage = Usage(self)
        self.deps = Deps(self)
        self.retention = Retention(self)

    def __repr__(self) -> str:  # never the key
        return f"cordon.Client({self.base_url!r})"

    def request(self, operation: str, *, params: Mapping[str, str] | None = None,
                query: Mapping[str, Any] | None = None, json_body: Any = None,
                body: bytes | None = None, headers: Mapping[str, str] | None = None,
                ) -> http.client.HTTPResponse:
        """Calls one operation of openapi.yaml by its operationId and returns
        the open response; raises the typed error of an error answer."""
        if operation not in OPERATIONS:
            raise ValueError(f"no operation {operation} in openapi.yaml")
        if not self._api_key:
            raise CordonError(f"{operation}: no API key: set CORDON_API_KEY or pass api_key",
                              code="unauthorized", operation=operation)
        method, path = OPERATIONS[operation][:2]
        for k, v in (params or {}).items():
            if not v:
                raise ValueError(f"{path}: {k} is required")
            path = path.replace("{" + k + "}", urllib.parse.quote(str(v), safe=""))
        q = {k: ("1" if v else "0") if isinstance(v, bool) else str(v)
             for k, v in (query or {}).items() if v is not None}
        url = self.base_url + path + ("?" + urllib.parse.urlencode(q) if q else "")
        h = {"Authorization": "Bearer " + self._api_key,
             "User-Agent": f"cordon-sdk-python/{__version__}", **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=body, headers=h, method=method)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 (the caller's URL)
        except urllib.error.HTTPError as e:
            with e:
                raise error_for(e.code, e.read(), operation) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CordonError(f"{operation}: {method} {url}: {reason}", operation=operation) from None

    def _json(self, operation: str, **kw: Any) -> Any:
        with self.request(operation, **kw) as r:
            data = r.read()
        return json.loads(data) if data else None

    def _text(self, operation: str, **kw: Any) -> str:
        with self.request(operation, **kw) as r:
            return r.read().decode("utf-8", "replace")

    def _bytes(self, operation: str, **kw: Any) -> bytes:
        with self.request(operation, **kw) as r:
            return r.read()

    def _chunks(self, operation: str, **kw: Any) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with self.request(operation, **kw) as r:
            while chunk := r.read1(65536):
                if s := decoder.decode(chunk):
                    yield s
            if rest := decoder.decode(b"", final=True):
                yield rest

    def whoami(self) -> Json:
        """The calling key: ``{id, name, role, workspace}``."""
        return self._json("whoami")

    def health(self, *, socket_path: str | None = None) -> Json:
        """Health from the unix socket ``STATE/serve.sock`` (no key); the body
        also while draining (then ``ok`` is false)."""
        status, data = self._socket_get("health", socket_path)
        if status not in (200, 503):
            raise error_for(status, data, "health")
        return json.loads(data)

    def metrics(self, *, socket_path: str | None = None, url: str | None = None,
                token: str | None = None) -> str:
        """Prometheus metrics from the unix socket, or from ``--metrics-listen``
        (``url``, and ``token`` when the operator set one)."""
        if url:
            path = OPERATIONS["metrics"][1]
            req = urllib.request.Request(url.rstrip("/") + path, headers=(
                {"Authorization": "Bearer " + token} if token else {}))
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310
                    return r.read().decode()
            except urllib.error.HTTPError as e:
                with e:
                    raise error_for(e.code, e.read(), "metrics") from None
            except (urllib.error.URLError, OSError) as e:
                raise CordonError(f"metrics: {url}: {getattr(e, 'reason', e)}",
                                  operation="metrics") from None
        status, data = self._socket_get("metrics", socket_path)
        if status != 200:
            raise error_for(status, data, "metrics")
        return data.decode()

    def _socket_get(self, operation: str, socket_path: str | None) -> tuple[int, bytes]:
        method, path = OPERATIONS[operation][:2]
        where = socket_path or self.socket_path
        if not where:
            raise CordonError(f"{operation}: no socket: pass socket_path or set CORDON_STATE",
                              operation=operation)
        conn = _UnixConnection(where, self.timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read()
        except OSError as e:
            raise CordonError(f"{operation}: {where}: {e}", operation=operation) from None
        finally:
            conn.close()


class _Resource:
    def __init__(self, client: Client) -> None:
        self._c = client


class Keys(_Resource):
    """API keys of the workspace (owner)."""

    def list(self) -> list[Json]:
        """The workspace's keys."""
        return self._c._json("listKeys")["keys"]

    def create(self, name: str, role: Literal["owner", "member"] = "member") -> Json:
        """A new key; its ``key`` is shown only in this answer."""
        return self._c._json("createKey", json_body={"name": name, "role": role})

    def revoke(self, id: str) -> Json:
        """Revokes the key with this public id."""
        return self._c._json("revokeKey", params={"id": id})


class Agents(_Resource):
    """Agents of the registry."""

    def list(self) -> list[Json]:
        """Every agent's latest version: ``[{name, version, sha256, registered}]``."""
        return self._c._json("listAgents")["items"]

    def get(self, name: str) -> Json:
        """One agent with every version, newest first, and their manifests."""
        return self._c._json("getAgent", params={"name": name})

    def register(self, source: str | os.PathLike[str] | bytes, *,
                 tree_sha256: str | None = None) -> Json:
        """Registers an agent (owner): a directory, packed here as a tar.gz and
        uploaded, or the bytes of a tar or tar.gz. With ``tree_sha256`` the
        server refuses a tree that hashes otherwise."""
        data, kind = _bundle(source)
        headers = {"Content-Type": kind}
        if tree_sha256:
            headers["X-Cordon-Tree-Sha256"] = tree_sha256
        return self._c._json("registerAgent", body=data, headers=headers)

    def register_path(self, path: str) -> Json:
        """Registers a directory on the server (only with ``--register-root``)."""
        return self._c._json("registerAgent", json_body={"path": path})


class Capabilities(_Resource):
    """Capabilities of the registry."""

    def list(self) -> list[Json]:
        """Every capability's latest version."""
        return self._c._json("listCapabilities")["items"]

    def register(self, name: str, source: str | os.PathLike[str] | bytes, *,
                 tree_sha256: str | None = None) -> Json:
        """Registers a capability (owner) from a directory or tar(.gz) bytes."""
        data, kind = _bundle(source)
        headers = {"Content-Type": kind}
        if tree_sha256:
            headers["X-Cordon-Tree-Sha256"] = tree_sha256
        return self._c._json("registerCapability", query={"name": name}, body=data,
                             headers=headers)

    def register_path(self, name: str, path: str) -> Json:
        """Registers a directory on the server (only with ``--register-root``)."""
        return self._c._json("registerCapability", json_body={"name": name, "path": path})


class Envs(_Resource):
    """Environments: named sets of variables."""

    def list(self) -> list[Json]:
        """Every env's latest version."""
        return self._c._json("listEnvs")["items"]

    def register(self, name: str, vars: Mapping[str, str]) -> Json:
        """Registers an env (owner)."""
        return self._c._json("registerEnv", json_body={"name": name, "vars": dict(vars)})


class Grants(_Resource):
    """Grants of capabilities to agents."""

    def create(self, agent: str, capability: str) -> Json:
        """Grants ``capability`` to ``agent`` (owner)."""
        return self._c._json("grant", json_body={"agent": agent, "capability": capability})

    def call(self, agent: str, callee: str) -> Json:
        """Lets ``agent`` call ``callee`` (``NAME`` or ``NAME@VERSION``) with call_agent (owner)."""
        return self._c._json("grant", json_body={"agent": agent, "call": callee})


class Secrets(_Resource):
    """Secrets: names and sizes only; values go in and never come out."""

    def list(self) -> list[Json]:
        """``[{name, size, updated}]``."""
        return self._c._json("listSecrets")["secrets"]

    def set(self, name: str, value: str) -> Json:
        """Creates or replaces a secret (owner)."""
        return self._c._json("setSecret", params={"name": name}, json_body={"value": value})

    def remove(self, name: str) -> Json:
        """Removes a secret (owner)."""
        return self._c._json("removeSecret", params={"name": name})

    def value(self, name: str) -> Json:
        """Always raises Forbidden: the server never returns a secret's value."""
        return self._c._json("getSecretValue", params={"name": name})


class Runs(_Resource):
    """Runs: dispatch, follow, read and cancel."""

    def list(self, *, agent: str | None = None, status: str | None = None,
             limit: int | None = None, since: str | None = None, until: str | None = None,
             cursor: str | None = None) -> Json:
        """Runs, newest first: ``{runs, next_cursor}``; pass ``next_cursor``
        back as ``cursor``."""
        return self._c._json("listRuns", query={"agent": agent, "status": status, "limit": limit,
                                                "since": since, "until": until, "cursor": cursor})

    def create(self, agent: str, input: Any = None, *,
               labels: Mapping[str, str] | None = None) -> Json:
        """Dispatches a run of ``NAME`` or ``NAME@VERSION``:
        ``{id, status: "queued", agent}``."""
        body: Json = {"agent": agent, "input": {} if input is None else input}
        if labels:
            body["labels"] = dict(labels)
        return self._c._json("createRun", json_body=body)

    def get(self, id: str) -> Json:
        """The run's record, with ``result`` once it finished."""
        return self._c._json("getRun", params={"id": id})

    def events(self, id: str, *, follow: bool = False, after: int | None = None) -> Iterator[Json]:
        """The run's events (dicts with ``seq``, ``ts``, ``type``, ...); with
        ``follow``, live until the run ends (keep-alives skipped). ``after``:
        only events with a greater ``seq``."""
        with self._c.request("runEvents", params={"id": id},
                             query={"follow": True if follow else None, "after": after},
                             headers={"Accept": "application/x-ndjson"}) as r:
            for line in r:
                if line.strip():
                    yield json.loads(line)

    def wait(self, id: str, *, timeout: float = 3600.0) -> Json:
        """Follows the run to its end and returns its final record."""
        deadline = time.monotonic() + timeout
        for _ in self.events(id, follow=True):
            pass
        while True:  # the stream ends at run.finished; the record is written right after
            run = self.get(id)
            if run["status"] not in _PENDING:
                return run
            if time.monotonic() > deadline:
                raise CordonError(f"run {id} is still {run['status']}", code="timeout",
                                  operation="getRun")
            time.sleep(0.1)

    def stdout(self, id: str) -> str:
        """The run's stdout as it is now (redacted, capped)."""
        return self._c._text("runStdout", params={"id": id})

    def stderr(self, id: str) -> str:
        """The run's stderr as it is now."""
        return self._c._text("runStderr", params={"id": id})

    def follow_stdout(self, id: str, *, offset: int | None = None) -> Iterator[str]:
        """The run's stdout as it is written, in chunks, until the run ends;
        ``offset``: the bytes already received."""
        return self._c._chunks("runStdout", params={"id": id},
                               query={"follow": True, "offset": offset})

    def follow_stderr(self, id: str, *, offset: int | None = None) -> Iterator[str]:
        """The run's stderr as it is written, until the run ends."""
        return self._c._chunks("runStderr", params={"id": id},
                               query={"follow": True, "offset": offset})

    def artifact(self, id: str, name: str) -> bytes:
        """An artifact's bytes (a name the result lists)."""
        return self._c._bytes("runArtifact", params={"id": id, "name": name})

    def evidence(self, id: str, *, artifacts: bool = False, to: BinaryIO | None = None) -> bytes:
        """The finished run's signed evidence pack, a tar.gz (``cordon evidence
        verify`` checks it); with ``to``, written there in pieces (and b"" returned)."""
        query = {"artifacts": True if artifacts else None}
        if to is None:
            return self._c._bytes("runEvidence", params={"id": id}, query=query)
        with self._c.request("runEvidence", params={"id": id}, query=query) as r:
            while chunk := r.read1(65536):
                to.write(chunk)
        return b""

    def cancel(self, id: str) -> Json:
        """Cancels a queued or running run: ``{id, cancelling: true}``; Conflict
        when it finished."""
        return self._c._json("cancelRun", params={"id": id})

    def hold(self, id: str, reason: str) -> Json:
        """Keeps the run past every retention age (owner)."""
        return self._c._json("holdRun", params={"id": id}, json_body={"reason": reason})

    def release(self, id: str) -> Json:
        """Releases the hold (owner)."""
        return self._c._json("releaseRun", params={"id": id})


class Approvals(_Resource):
    """Held requests waiting for a decision."""

    def list(self) -> list[Json]:
        """The pending approvals of the workspace."""
        return self._c._json("listApprovals")["approvals"]

    def approve(self, id: str) -> Json:
        """Approves a held request (owner): ``{id, decision}``."""
        return self._c._json("approve", params={"id": id})

    def reject(self, id: str) -> Json:
        """Rejects a held request (owner)."""
        return self._c._json("reject", params={"id": id})


class Audit(_Resource):
    """The audit log and its verification."""

    def list(self, *, run: str | None = None, limit: int | None = None,
             offset: int | None = None) -> Json:
        """``{entries, verify}``."""
        return self._c._json("audit", query={"run": run, "limit": limit, "offset": offset})


class Policy(_Resource):
    """The workspace's egress policy."""

    def get(self) -> Json:
        """``{operator, workspace, effective}``."""
        return self._c._json("getPolicy")

    def put(self, yaml: str) -> Json:
        """Replaces the workspace's policy (owner) with this YAML."""
        return self._c._json("putPolicy", body=yaml.encode(),
                             headers={"Content-Type": "application/yaml"})


class Schedules(_Resource):
    """Runs started on a cron schedule."""

    def list(self) -> list[Json]:
        """Every schedule of the workspace."""
        return self._c._json("listSchedules")["items"]

    def get(self, name: str) -> Json:
        """One schedule."""
        return self._c._json("getSchedule", params={"name": name})

    def create(self, name: str, agent: str, cron: str, **fields: Any) -> Json:
        """Creates a schedule (owner); ``fields``: tz, input, overlap, catch_up."""
        return self._c._json("createSchedule",
                             json_body={"name": name, "agent": agent, "cron": cron, **fields})

    def remove(self, name: str) -> Json:
        """Removes a schedule (owner); its runs stay."""
        return self._c._json("deleteSchedule", params={"name": name})

    def pause(self, name: str) -> Json:
        """Pauses a schedule (owner)."""
        return self._c._json("pauseSchedule", params={"name": name})

    def resume(self, name: str) -> Json:
        """Resumes a schedule (owner)."""
        return self._c._json("resumeSchedule", params={"name": name})


class Services(_Resource):
    """Long-running agents the server keeps running."""

    def list(self) -> list[Json]:
        """Every service of the workspace."""
        return self._c._json("listServices")["items"]

    def get(self, name: str) -> Json:
        """One service."""
        return self._c._json("getService", params={"name": name})

    def create(self, name: str, agent: str, **fields: Any) -> Json:
        """Creates a service (owner); ``fields``: input, env, secrets."""
        return self._c._json("createService", json_body={"name": name, "agent": agent, **fields})

    def remove(self, name: str) -> Json:
        """Removes a service (owner); its run is cancelled."""
        return self._c._json("deleteService", params={"name": name})

    def pause(self, name: str) -> Json:
        """Pauses a service (owner)."""
        return self._c._json("pauseService", params={"name": name})

    def resume(self, name: str) -> Json:
        """Resumes a service (owner)."""
        return self._c._json("resumeService", params={"name": name})

    def stdout(self, name: str) -> str:
        """The stdout of the service's run, or of its last one."""
        return self._c._text("serviceStdout", params={"name": name})

    def stderr(self, name: str) -> str:
        """The stderr of the service's run, or of its last one."""
        return self._c._text("serviceStderr", params={"name": name})

    def follow_stdout(self, name: str, *, offset: int | None = None) -> Iterator[str]:
        """The stdout of the service's run as it is written, until that run ends."""
        return self._c._chunks("serviceStdout", params={"name": name},
                               query={"follow": True, "offset": offset})


class Usage(_Resource):
    """What the workspace's runs used."""

    def get(self, *, from_: str | None = None, to: str | None = None,
            group_by: Literal["agent", "day", "caller", "none"] | None = None) -> Json:
        """``{workspace, from, to, group_by, groups, total}`` for the runs created
        in [from_, to) (RFC 3339; default the last 30 days)."""
        return self._c._json("getUsage", query={"from": from_, "to": to, "group_by": group_by})


class Deps(_Resource):
    """The dependency layers the workspace's agents declare."""

    def list(self) -> list[Json]:
        """``[{agent, version, deps: {sha256, runtime, ..., built} | None}]``."""
        return self._c._json("listDeps")["agents"]


class Retention(_Resource):
    """How long the workspace's runs are kept."""

    def get(self) -> Json:
        """The ages that apply, the workspace's own and the operator's."""
        return self._c._json("getRetention")

    def put(self, **ages: str | None) -> Json:
        """Sets the workspace's own ages (owner): ``records``, ``files``; None
        takes the operator's."""
        return self._c._json("putRetention", json_body=ages)
