# SPDX-License-Identifier: Apache-2.0
"""Drives the cordon package, installed from its wheel, against a real
`cordon serve` (tests/integration/test_sdk.py runs it with the interpreter
of the venv it installed the wheel into). The key and URL come from
CORDON_API_KEY and CORDON_URL, as a user's would; SDK_AGENT_DIR is an agent
to register, SDK_MEMBER_KEY a member key, SDK_OUT where to write the
evidence pack."""
import json
import os
import sys

import cordon
from cordon import Client

env = os.environ
out = {"resolved": cordon.__file__, "version": cordon.__version__}


def refused(cls, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except cls as e:
        return e
    raise AssertionError(f"{fn.__qualname__}{args} did not raise {cls.__name__}")


c = Client()
assert env["CORDON_API_KEY"] not in repr(c)
assert c.whoami()["role"] == "owner"

# Registry: an agent uploaded as a tar.gz packed by the SDK.
reg = c.agents.register(env["SDK_AGENT_DIR"])
assert reg["name"] == "sdk-hello", reg
out["agent_sha256"] = reg["sha256"]
assert any(a["name"] == "sdk-hello" for a in c.agents.list())
assert c.agents.get("sdk-hello")["versions"][0]["manifest"]["name"] == "sdk-hello"
refused(cordon.NotFound, c.agents.get, "no-such-agent")
assert c.capabilities.register("sdk-data-py", env["SDK_AGENT_DIR"])["name"] == "sdk-data-py"
assert any(x["name"] == "sdk-data-py" for x in c.capabilities.list())
c.envs.register("sdk-env-py", {"REGION": "eu"})
assert any(x["name"] == "sdk-env-py" for x in c.envs.list())
c.grants.create("sdk-hello", "sdk-data-py")

# Secrets: set, list (no value), the value refused, remove.
value = "py-sdk-secret-" + "y" * 20
assert c.secrets.set("SDK_PY", value) == {"name": "SDK_PY", "size": len(value)}
secrets = c.secrets.list()
assert any(s["name"] == "SDK_PY" for s in secrets) and value not in json.dumps(secrets)
e = refused(cordon.Forbidden, c.secrets.value, "SDK_PY")
assert e.status == 403 and e.code == "forbidden" and e.operation == "getSecretValue"
c.secrets.remove("SDK_PY")
assert not any(s["name"] == "SDK_PY" for s in c.secrets.list())

# A run: dispatch, follow its events to the end, read what it left.
run = c.runs.create("sdk-hello", {"from": "python"})
assert run["status"] == "queued"
types = []
for ev in c.runs.events(run["id"], follow=True):
    assert ev["run_id"] == run["id"]
    if not types:  # live: the first event comes while the run still goes on (it sleeps 1 s)
        assert c.runs.get(run["id"])["status"] in ("created", "running")
    types.append(ev["type"])
assert types[0] == "run.created" and types[-1] == "run.finished", types
out["event_types"] = types
rec = c.runs.wait(run["id"])
assert rec["status"] == "succeeded", rec
assert rec["result"]["output"] == {"ok": True}
later = [ev["seq"] for ev in c.runs.events(run["id"], after=1)]
assert len(later) == len(types) - 1 and later[0] > 1
assert "hello from the agent" in c.runs.stdout(run["id"])
assert "hello from the agent" in "".join(c.runs.follow_stdout(run["id"]))
assert isinstance(c.runs.stderr(run["id"]), str)
assert c.runs.artifact(run["id"], "report.txt") == b"report\n"
with open(env["SDK_OUT"], "wb") as f:
    c.runs.evidence(run["id"], to=f)
with open(env["SDK_OUT"], "rb") as f:
    assert f.read(2) == b"\x1f\x8b"
refused(cordon.Conflict, c.runs.cancel, run["id"])
refused(cordon.NotFound, c.runs.get, "run_does_not_exist")
assert any(r["id"] == run["id"] for r in c.runs.list(agent="sdk-hello", limit=5)["runs"])
assert c.audit.list(run=run["id"])["verify"]["ok"] is True
out["run_id"] = run["id"]

# Approvals: none waiting; an unknown one is NotFound.
assert c.approvals.list() == []
refused(cordon.NotFound, c.approvals.approve, "apr_0123456789")
refused(cordon.NotFound, c.approvals.reject, "apr_0123456789")

# Usage: the runs counted under their agent.
usage = c.usage.get(group_by="agent")
assert any(g["key"] == "sdk-hello" and g["runs"] >= 1 for g in usage["groups"]), usage
refused(cordon.BadRequest, c.usage.get, group_by="planet")

# Keys, policy, retention, schedules, services: a call each.
assert len(c.keys.list()) >= 2
k = c.keys.create("sdk-temp-py", "member")
temp = Client(api_key=k["key"])
assert temp.whoami()["role"] == "member"
c.keys.revoke(k["id"])
refused(cordon.Unauthorized, temp.whoami)
assert "operator" in c.policy.get()
assert c.retention.get()
assert c.schedules.create("sdk-nightly-py", "sdk-hello", "0 3 * * *")["name"] == "sdk-nightly-py"
assert c.schedules.pause("sdk-nightly-py")["paused"] is True
assert c.schedules.resume("sdk-nightly-py")["paused"] is False
assert any(s["name"] == "sdk-nightly-py" for s in c.schedules.list())
assert c.schedules.get("sdk-nightly-py")["cron"] == "0 3 * * *"
assert c.schedules.remove("sdk-nightly-py")["removed"] is True
assert c.services.list() == []
refused(cordon.NotFound, c.services.get, "nothing")

# Roles: a member key may read but not set secrets.
member = Client(api_key=env["SDK_MEMBER_KEY"])
assert refused(cordon.Forbidden, member.secrets.set, "X", "y").operation == "setSecret"
assert isinstance(member.secrets.list(), list)
refused(cordon.CordonError, Client(api_key="").whoami)

# The unix socket: health and metrics.
assert c.health()["ok"] is True
assert c.metrics().startswith("# ")
# --metrics-listen: with the operator's token, and refused without it
scrape = c.metrics(url=env["SDK_METRICS_URL"], token=env["SDK_METRICS_TOKEN"])
assert "\ncordon_runs_total{" in scrape, scrape[:2000]
refused(cordon.Unauthorized, c.metrics, url=env["SDK_METRICS_URL"])

# Every operation of the table is a method of the client.
for op, (_, _, method) in cordon.OPERATIONS.items():
    obj = c
    for part in method.split("."):
        obj = getattr(obj, part)
    assert callable(obj), op
json.dump(out, sys.stdout)
