# SPDX-License-Identifier: Apache-2.0
"""Writes REFERENCE.md from the package's docstrings and signatures:
``python3 scripts/reference.py > REFERENCE.md`` (it imports ``cordon`` from
src/). tests/integration/test_sdk.py checks the committed file is what this
gives."""
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
import cordon  # noqa: E402

out = ["# cordon (Python) reference", "",
       "Generated from the docstrings by `scripts/reference.py`; do not edit by hand.",
       "The HTTP API behind each call is [docs/api.md](../../docs/api.md).", ""]


class _Raw(str):
    """An annotation shown as written (the package uses string annotations)."""

    def __repr__(self):
        return str(self)


def signature(fn):
    sig = inspect.signature(fn)
    params = [p.replace(annotation=_Raw(p.annotation)) if isinstance(p.annotation, str) else p
              for p in sig.parameters.values() if p.name != "self"]
    ret = sig.return_annotation
    ret = _Raw(ret) if isinstance(ret, str) and ret != "None" else inspect.Signature.empty
    return str(sig.replace(parameters=params, return_annotation=ret))


def doc(obj):
    return inspect.cleandoc(obj.__doc__ or "")


def show_class(cls, heading):
    bases = [b.__name__ for b in cls.__bases__ if b is not object and not b.__name__.startswith("_")]
    out.append(f"## {heading} `{cls.__name__}`" + (f" ({', '.join(bases)})" if bases else ""))
    out.append("")
    if doc(cls):
        out.extend([doc(cls), ""])
    if cls.__init__ is not object.__init__ and "__init__" in cls.__dict__:
        out.append(f"- `{cls.__name__}{signature(cls.__init__)}`")
    for name, fn in cls.__dict__.items():
        if name.startswith("_") or not callable(fn):
            continue
        line = f"- `{name}{signature(fn)}`"
        if doc(fn):
            line += "  \n  " + doc(fn).replace("\n", "\n  ")
        out.append(line)
    out.append("")


show_class(cordon.Client, "class")
out.extend(["Resources, each an attribute of `Client` (`client.runs`, ...):", ""])
for name in ("keys", "agents", "capabilities", "envs", "grants", "secrets", "runs", "approvals",
             "audit", "policy", "schedules", "services", "usage", "retention"):
    show_class(getattr(cordon, name.capitalize()), f"`client.{name}`:")
out.extend(["## function `pack_directory`", "",
            f"- `pack_directory{signature(cordon.pack_directory)}`  \n  "
            + doc(cordon.pack_directory).replace("\n", "\n  "), ""])
out.extend(["## Errors", "", "Each error code of the API has its class; all derive from "
            "`CordonError`.", ""])
show_class(cordon.CordonError, "class")
out.extend(["| code | class | when |", "|---|---|---|"])
for code, cls in cordon.ERROR_CLASSES.items():
    out.append(f"| `{code}` | `{cls.__name__}` | {doc(cls)} |")
out.extend(["", "## `OPERATIONS`", "",
            "Every operationId of openapi.yaml, its method and path, and the method that calls it.", "",
            "| operationId | request | method |", "|---|---|---|"])
for op, (method, path, name) in cordon.OPERATIONS.items():
    out.append(f"| `{op}` | `{method} {path}` | `{name}` |")
sys.stdout.write("\n".join(out).rstrip() + "\n")
