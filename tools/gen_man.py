#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the manual pages from --help: gen_man.py HELP2MAN CORDON OUTDIR CMD...

OUTDIR/cordon.1 from `cordon --help`, and OUTDIR/cordon-CMD.1 from
`cordon CMD --help` for each CMD, through Debian's help2man, so a page says
exactly what --help says. A command's subcommands (cordon runs show, cordon
keys create) are in its --help and so in its page. The CMD list (meson.build
names the outputs) must be the list `cordon --help` prints: a command added
without a page fails the build.
"""
import os
import stat
import subprocess
import sys
import tempfile


def commands_of(cordon):
    out = subprocess.run([cordon, "--help"], check=True, capture_output=True, text=True).stdout
    block = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    return [(line.split()[0], line.split(None, 1)[1]) for line in block.splitlines()]


def wrapper(tmp, name, cordon, cmd):
    """An executable NAME that prints `cordon CMD --help`, with the second and
    later usage lines as help2man reads them ("  or: ...")."""
    path = os.path.join(tmp, name)
    args = " ".join(["'%s'" % cordon] + ([cmd] if cmd else []))
    with open(path, "w") as f:
        f.write("#!/bin/sh\nset -e\nout=$(%s \"$@\")\n" % args)
        f.write("printf '%s\\n' \"$out\" | sed -E '1,/^$/ s/^ +(cordon )/  or: \\1/'\n")
    os.chmod(path, stat.S_IRWXU)
    return path


def main():
    help2man, cordon, outdir, wanted = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3], sys.argv[4:]
    cmds = commands_of(cordon)
    names = [c for c, _ in cmds]
    if names != wanted:
        sys.exit("gen_man.py: cordon --help lists %s but meson.build's man_commands is %s: "
                 "make them the same" % (names, wanted))
    version = subprocess.run([cordon, "--version"], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
    env = dict(os.environ, LC_ALL="C.UTF-8")
    with tempfile.TemporaryDirectory() as tmp:
        see_also = os.path.join(tmp, "see-also")
        pages = [("cordon", None, "run AI agents and commands in throwaway sandboxes")]
        pages += [("cordon-" + c, c, summary) for c, summary in cmds]
        for page, cmd, summary in pages:
            others = ["cordon"] if cmd else [p for p, _, _ in pages[1:]]
            with open(see_also, "w") as f:
                f.write("[SEE ALSO]\n" + ",\n".join(r"\fB%s\fR(1)" % o for o in others) + "\n")
                f.write(".PP\nThe full documentation is in docs/ of cordon's source.\n")
            out = os.path.join(outdir, page + ".1")
            subprocess.run([help2man, "--no-info",
                            "--version-string=" + version, "--name=" + summary,
                            "--include=" + see_also, "--output=" + out,
                            wrapper(tmp, page, cordon, cmd)], check=True, env=env)


if __name__ == "__main__":
    main()
