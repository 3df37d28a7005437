#!/bin/sh
# A cordon agent in plain shell. Input: /workspace/input.json, e.g.
#   {"text": "the quick brown fox"}
# Steps go to $CORDON_STEPS (one JSON object per line), the result to
# /workspace/output.json, files to keep to /workspace/out/.
set -eu
step() { printf '{"name": "%s"}\n' "$1" > "$CORDON_STEPS"; }

step "read input"
input=$(cat /workspace/input.json)
words=$(printf '%s' "$input" | tr -c 'A-Za-z0-9' ' ' | wc -w)

step "look around"
{
  echo "# What a cordon agent sees"
  echo
  echo "- user: $(id -u):$(id -g)"
  echo "- root: $(ls / | tr '\n' ' ')"
  echo "- network interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
  echo "- agent files (read-only): $(ls /agent | tr '\n' ' ')"
  printf -- "- write /agent: "; (touch /agent/x 2>&1 || true) | head -1
} > /workspace/out/report.md

step "write output"
printf '{"words": %d}\n' "$words" > /workspace/output.json
echo "counted $words words"
