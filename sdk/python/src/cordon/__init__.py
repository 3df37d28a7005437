# SPDX-License-Identifier: Apache-2.0
"""The Python client of cordon serve's HTTP API (docs/api.md).

    import cordon
    c = cordon.Client()                       # $CORDON_URL, $CORDON_API_KEY
    run = c.runs.create("hello", {"n": 1})
    for event in c.runs.events(run["id"], follow=True):
        print(event["type"])
"""

from ._client import (Agents, Approvals, Audit, Capabilities, Client, Envs, Grants, Json, Keys,
                      Policy, Retention, Runs, Schedules, Secrets, Services, Usage, pack_directory)
from ._errors import (ERROR_CLASSES, BadRequest, Conflict, CordonError, Forbidden, Internal,
                      MethodNotAllowed, NotFound, Timeout, TooLarge, TooManyRequests, Unauthorized,
                      Unavailable, UnsupportedMediaType, error_for)
from ._operations import OPERATIONS
from ._version import __version__

__all__ = [
    "Client", "Json", "pack_directory", "OPERATIONS", "__version__",
    "Keys", "Agents", "Capabilities", "Envs", "Grants", "Secrets", "Runs", "Approvals", "Audit",
    "Policy", "Schedules", "Services", "Usage", "Retention",
    "CordonError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "Conflict", "TooLarge", "UnsupportedMediaType", "TooManyRequests", "Internal", "Unavailable",
    "Timeout", "ERROR_CLASSES", "error_for",
]
