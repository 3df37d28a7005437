# SPDX-License-Identifier: Apache-2.0
"""Every operation of docs/api/openapi.yaml: its method, its path and the SDK
method that calls it. The client takes the method and path from here, and
tests/integration/test_sdk.py checks this table against openapi.yaml, so an
operation added there without an SDK method fails that test."""

from typing import Final

OPERATIONS: Final[dict[str, tuple[str, str, str]]] = {
    "whoami": ("GET", "/v1/whoami", "whoami"),
    "listKeys": ("GET", "/v1/keys", "keys.list"),
    "createKey": ("POST", "/v1/keys", "keys.create"),
    "revokeKey": ("DELETE", "/v1/keys/{id}", "keys.revoke"),
    "listAgents": ("GET", "/v1/agents", "agents.list"),
    "registerAgent": ("POST", "/v1/agents", "agents.register"),
    "getAgent": ("GET", "/v1/agents/{name}", "agents.get"),
    "listCapabilities": ("GET", "/v1/capabilities", "capabilities.list"),
    "registerCapability": ("POST", "/v1/capabilities", "capabilities.register"),
    "listEnvs": ("GET", "/v1/envs", "envs.list"),
    "registerEnv": ("POST", "/v1/envs", "envs.register"),
    "grant": ("POST", "/v1/grants", "grants.create"),
    "listSecrets": ("GET", "/v1/secrets", "secrets.list"),
    # The server never returns a secret's value, to any role (always 403):
    # secrets.value() is there so that the refusal is a typed Forbidden.
    "getSecretValue": ("GET", "/v1/secrets/{name}", "secrets.value"),
    "setSecret": ("PUT", "/v1/secrets/{name}", "secrets.set"),
    "removeSecret": ("DELETE", "/v1/secrets/{name}", "secrets.remove"),
    "listRuns": ("GET", "/v1/runs", "runs.list"),
    "createRun": ("POST", "/v1/runs", "runs.create"),
    "getRun": ("GET", "/v1/runs/{id}", "runs.get"),
    "runEvents": ("GET", "/v1/runs/{id}/events", "runs.events"),
    "runStdout": ("GET", "/v1/runs/{id}/stdout", "runs.stdout"),
    "runStderr": ("GET", "/v1/runs/{id}/stderr", "runs.stderr"),
    "runArtifact": ("GET", "/v1/runs/{id}/artifacts/{name}", "runs.artifact"),
    "runEvidence": ("GET", "/v1/runs/{id}/evidence", "runs.evidence"),
    "cancelRun": ("POST", "/v1/runs/{id}/cancel", "runs.cancel"),
    "holdRun": ("PUT", "/v1/runs/{id}/hold", "runs.hold"),
    "releaseRun": ("DELETE", "/v1/runs/{id}/hold", "runs.release"),
    "listApprovals": ("GET", "/v1/approvals", "approvals.list"),
    "approve": ("POST", "/v1/approvals/{id}/approve", "approvals.approve"),
    "reject": ("POST", "/v1/approvals/{id}/reject", "approvals.reject"),
    "audit": ("GET", "/v1/audit", "audit.list"),
    "getPolicy": ("GET", "/v1/policy", "policy.get"),
    "putPolicy": ("PUT", "/v1/policy", "policy.put"),
    "listSchedules": ("GET", "/v1/schedules", "schedules.list"),
    "createSchedule": ("POST", "/v1/schedules", "schedules.create"),
    "getSchedule": ("GET", "/v1/schedules/{name}", "schedules.get"),
    "deleteSchedule": ("DELETE", "/v1/schedules/{name}", "schedules.remove"),
    "pauseSchedule": ("POST", "/v1/schedules/{name}/pause", "schedules.pause"),
    "resumeSchedule": ("POST", "/v1/schedules/{name}/resume", "schedules.resume"),
    "listServices": ("GET", "/v1/services", "services.list"),
    "createService": ("POST", "/v1/services", "services.create"),
    "getService": ("GET", "/v1/services/{name}", "services.get"),
    "deleteService": ("DELETE", "/v1/services/{name}", "services.remove"),
    "pauseService": ("POST", "/v1/services/{name}/pause", "services.pause"),
    "resumeService": ("POST", "/v1/services/{name}/resume", "services.resume"),
    "serviceStdout": ("GET", "/v1/services/{name}/stdout", "services.stdout"),
    "serviceStderr": ("GET", "/v1/services/{name}/stderr", "services.stderr"),
    "getUsage": ("GET", "/v1/usage", "usage.get"),
    "getRetention": ("GET", "/v1/retention", "retention.get"),
    "putRetention": ("PUT", "/v1/retention", "retention.put"),
    "health": ("GET", "/healthz", "health"),
    "metrics": ("GET", "/metrics", "metrics"),
}
