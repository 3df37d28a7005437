# SPDX-License-Identifier: Apache-2.0
"""The doc test: every shell example in README.md and docs/*.md runs, as
written, so a documented command cannot silently stop working.

An example is a fenced ```sh block, or a `$ ` line of an unlabelled block
(a transcript: its output is illustration and is not compared). A
document's examples run in order in one bash, in the world
doctest_env.sh makes (a fresh state, ~/data, a git repository holding the
examples, the mock LLM as llm.demo.test, `cordon` on PATH). Every command
must exit 0 unless the HTML comment right before its block says otherwise:

    <!-- doctest: skip REASON -->          the block is not run (say why)
    <!-- doctest: exit CODE... REASON -->  these exit codes are expected too

Placeholders are replaced by what makes the real thing (PLACEHOLDERS), and
`cordon serve` is started in the background and waited for. Nothing else of
a command is changed.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import CORDON

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(CORDON).resolve().parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# (pattern, replacement) on each command line, in order.
PLACEHOLDERS = [
    (r"/var/lib/cordon", "$CORDON_STATE"),           # never the host's own state
    (r"127\.0\.0\.1:8470", "127.0.0.1:$DOC_PORT"),    # a free port, not a fixed one
    (r"127\.0\.0\.1:9470", "127.0.0.1:$DOC_METRICS_PORT"),  # --metrics-listen's, likewise
    (r"runs cancel RUN_ID", "runs cancel $(doc_running_run)"),
    (r"\bRUN_ID\b|\brun_[0-9a-f]{4}…", "$(doc_last_run)"),
    (r"\bAPPROVAL_ID\b|\bapr_[0-9a-f]{10}\b", "$(doc_pending_approval)"),
    (r"cdn_live_…", "$(doc_key)"),
    (r"\b[0-9a-f]{8}\.\.\.", "$(doc_pubkey)"),
]


class Example:
    def __init__(self, doc, line, commands, directive):
        self.doc, self.line, self.commands, self.directive = doc, line, commands, directive
        self.skip = None
        self.exits = {0}
        if directive:
            m = re.match(r"skip\s+(.+)", directive)
            if m:
                self.skip = m.group(1)
            m = re.match(r"exit\s+((?:\d+\s+)+)(.+)", directive)
            if m:
                self.exits |= {int(x) for x in m.group(1).split()}

    @property
    def where(self):
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def commands_of(body, transcript):
    """Command lines (continuations joined); a transcript's are its `$ ` lines."""
    out, cur = [], ""
    for raw in body.splitlines():
        if transcript:
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        if not raw.strip() or (not cur and raw.lstrip().startswith("#")):
            continue
        cur += raw
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        out.append(cur)
        cur = ""
    return out


def examples_of(doc):
    text = doc.read_text()
    found = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        lang, body = m.group(1), m.group(2)
        transcript = lang == "" and re.search(r"^\$ ", body, re.M)
        if lang not in ("sh", "bash", "shell") and not transcript:
            continue
        before = text[:m.start()].rstrip().rsplit("\n", 1)[-1]
        d = re.fullmatch(r"<!--\s*doctest:\s*(.*?)\s*-->", before.strip())
        line = text[:m.start()].count("\n") + 1
        found.append(Example(doc, line, commands_of(body, transcript), d.group(1) if d else None))
    return found


def script_of(examples):
    out = [f'. "{REPO}/tests/integration/doctest_env.sh"']
    for ex in examples:
        if ex.skip:
            out.append(f"echo 'doctest: {ex.where}: skipped: {ex.skip}'")
            continue
        for cmd in ex.commands:
            for pat, rep in PLACEHOLDERS:
                cmd = re.sub(pat, rep, cmd)
            shown = cmd.replace("'", "'\\''")
            out.append(f"echo '$ {shown}' >&2")
            if re.match(r"\s*(build/)?cordon serve\b", cmd):
                cmd = "doc_serve " + cmd.split("#")[0]
            elif re.match(r"\s*(build/)?cordon init\b", cmd):
                cmd = cmd.split("#")[0] + f' | tee "$DOC_TMP/init.out"'
            codes = " ".join(str(c) for c in sorted(ex.exits))
            out.append(f"{cmd}\nrc=$?\n"
                       f"case \" {codes} \" in *\" $rc \"*) ;; "
                       f"*) echo 'doctest: {ex.where}: exit '$rc': {shown}' >&2; exit 1;; esac")
    out.append("echo 'doctest: all examples ran'")
    return "\n".join(out) + "\n"


def test_every_document_with_examples_is_found():
    with_examples = {d.name for d in DOCS if examples_of(d)}
    assert {"README.md", "runs.md", "api.md", "evidence.md", "egress.md"} <= with_examples


def test_skips_say_why():
    for d in DOCS:
        for ex in examples_of(d):
            if ex.directive:
                assert ex.skip or ex.exits != {0}, f"{ex.where}: unknown directive {ex.directive!r}"
            if ex.skip:
                assert len(ex.skip.split()) >= 3, f"{ex.where}: a skip needs a reason"


@pytest.mark.parametrize("doc", [d for d in DOCS if examples_of(d)], ids=lambda d: d.name)
def test_examples_run(doc, tmp_path):
    examples = examples_of(doc)
    script = tmp_path / "examples.sh"
    script.write_text(script_of(examples))
    env = dict(os.environ, DOC_TMP=str(tmp_path), DOC_REPO=str(REPO), DOC_BUILD=str(BUILD))
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, errors="replace",
                       env=env, timeout=300)
    assert r.returncode == 0 and "doctest: all examples ran" in r.stdout, \
        f"{doc.name}:\n--- stdout\n{r.stdout[-6000:]}\n--- stderr\n{r.stderr[-6000:]}"
