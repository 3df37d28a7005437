# SPDX-License-Identifier: Apache-2.0
# The world the documentation's shell examples run in (test_docs.py sources
# this, then runs a document's examples in order, in one shell).
#
# A user's machine, offline: a fresh state directory, a home with ~/data, a
# working directory that is a git repository holding the repo's examples,
# `cordon` on PATH and build/ beside it, and the stand-ins `make demo` uses
# for what would be on the internet: the mock LLM (examples/mock-llm) named
# llm.demo.test through a hosts file and the operator's policy, which lets
# the proxy reach it on loopback. Placeholders in the examples (RUN_ID,
# APPROVAL_ID, cdn_live_…, a public key) are replaced by test_docs.py with
# calls of the doc_* functions below, which make the real thing.
set -u

doc_fail() { echo "doctest: $*" >&2; exit 1; }

export HOME=$DOC_TMP/home
export CORDON_STATE=$DOC_TMP/state
export NO_COLOR=1
unset CORDON_URL CORDON_API_KEY CORDON_WORKSPACE CORDON_MASTER_KEY
mkdir -p "$HOME/data" "$DOC_TMP/bin" "$DOC_TMP/work"
mkdir -m 700 -p "$CORDON_STATE"
chmod 755 "$DOC_TMP" "$HOME" "$HOME/data"
printf 'print("job ran")\n' > "$HOME/data/job.py"
chmod 644 "$HOME/data/job.py"
for b in cordon cordon-full cordon-api cordon-net; do
  [ -e "$DOC_BUILD/$b" ] && ln -sf "$DOC_BUILD/$b" "$DOC_TMP/bin/$b"
done
export PATH=$DOC_TMP/bin:$PATH

cd "$DOC_TMP/work"
ln -s "$DOC_BUILD" build
cp -r "$DOC_REPO/examples" examples
chmod -R a+rX "$DOC_TMP/work"
git init -q . && git -c user.name=doc -c user.email=doc@test add -A &&
  git -c user.name=doc -c user.email=doc@test commit -qm "the examples" ||
  doc_fail "git repository"

# The mock LLM and its key ($KEY, as the README sets it).
KEY="doc-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export KEY
MOCK_LLM_KEY=$KEY python3 examples/mock-llm/server.py > "$DOC_TMP/llm.port" &
echo "$!" > "$DOC_TMP/pids"
for _ in $(seq 50); do [ -s "$DOC_TMP/llm.port" ] && break; sleep 0.1; done
LLM_PORT=$(head -1 "$DOC_TMP/llm.port")
[ -n "$LLM_PORT" ] || doc_fail "the mock LLM did not start"
# A stand-in for api.example.com, whose POSTs the operator holds for
# approval (the approvals examples).
python3 -m http.server --bind 127.0.0.9 0 > "$DOC_TMP/approval-http.log" 2>&1 &
echo "$!" >> "$DOC_TMP/pids"
APPROVAL_PORT=""
for _ in $(seq 50); do
  APPROVAL_PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$DOC_TMP/approval-http.log" | head -1)
  [ -n "$APPROVAL_PORT" ] && break
  sleep 0.1
done
[ -n "$APPROVAL_PORT" ] || doc_fail "the approval stand-in did not start"
printf '127.0.0.1 llm.demo.test\n127.0.0.9 api.example.com\n' > "$DOC_TMP/hosts"
export CORDON_HOSTS_FILE=$DOC_TMP/hosts
# The operator's policy: what the demo passes with --policy and
# --allow-private, kept in the state where every run finds it.
cat > "$CORDON_STATE/policy.yaml" <<EOF
version: 1
enforce: true
domains:
  - name: llm.demo.test
    ports: [$LLM_PORT]
    methods: [POST]
  - name: api.example.com
    ports: [$APPROVAL_PORT]
    approval: required
private:
  - 127.0.0.1:$LLM_PORT
  - 127.0.0.9:$APPROVAL_PORT
EOF
printf '{"topic": "secure sandboxes for AI agents", "llm_url": "http://llm.demo.test:%s/v1/chat/completions"}\n' \
  "$LLM_PORT" > input.json
# A workspace's policy (what PUT /v1/policy takes: it can only narrow).
cat > policy.yaml <<EOF
version: 1
domains:
  - name: llm.demo.test
    ports: [$LLM_PORT]
    methods: [POST]
EOF

# An HTTP error is a failed example: the API examples use curl -s, which
# exits 0 on a 404.
curl() { command curl --fail-with-body "$@"; }

# The agent the API examples upload: it writes report.md.
mkdir -p summarizer
cat > summarizer/agent.json <<'EOF'
{"name": "summarizer", "version": "1", "entrypoint": ["/bin/sh", "/agent/run.sh"]}
EOF
cat > summarizer/run.sh <<'EOF'
echo "# summary of $(cat /workspace/input.json)" > /workspace/out/report.md
echo '{"ok": true}' > /workspace/output.json
EOF
chmod -R a+rX summarizer

# Ports for cordon serve and its --metrics-listen: free ones, for the
# documented 8470 and 9470.
DOC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DOC_METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Background processes, in a file: the doc_* functions run in command
# substitutions, whose variables die with them.
doc_bg() { echo "$1" >> "$DOC_TMP/pids"; }
doc_cleanup() {
  for p in $(cat "$DOC_TMP/pids"); do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap doc_cleanup EXIT

# `cordon serve …` in an example: started in the background (any earlier one
# stopped first), and waited for until it answers.
doc_serve() {
  [ -n "${DOC_SERVE_PID:-}" ] && kill "$DOC_SERVE_PID" 2>/dev/null && wait "$DOC_SERVE_PID" 2>/dev/null
  "$@" 2> "$DOC_TMP/serve.log" &
  DOC_SERVE_PID=$!
  doc_bg "$DOC_SERVE_PID"
  for _ in $(seq 100); do
    curl -s --unix-socket "$CORDON_STATE/serve.sock" http://x/healthz > /dev/null 2>&1 && return 0
    sleep 0.05
  done
  cat "$DOC_TMP/serve.log" >&2
  return 1
}

# The owner key `cordon init` printed (its last line), for cdn_live_….
doc_key() {
  [ -s "$DOC_TMP/init.out" ] || doc_fail "no cordon init ran before the key was needed"
  tail -1 "$DOC_TMP/init.out"
}

# A finished run to name as RUN_ID: the newest one (made here when there is
# none yet), through the API when CORDON_URL is set, as the example would.
doc_last_run() {
  local id
  id=$(cordon runs list --json --limit 1 2> /dev/null |
       python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["id"] if r else "")')
  if [ -z "$id" ]; then
    if [ -n "${CORDON_URL:-}" ]; then
      cordon agent register summarizer > /dev/null && cordon run -q summarizer ||
        doc_fail "a run for RUN_ID"
    else
      cordon run -q examples/shell-agent || doc_fail "a run for RUN_ID"
    fi
    id=$(cordon runs list --json --limit 1 |
         python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  fi
  echo "$id"
}

# A run still going, for `runs cancel RUN_ID`.
doc_running_run() {
  local d=$DOC_TMP/long-agent
  mkdir -p "$d"
  echo '{"name": "long", "version": "1", "entrypoint": ["/bin/sh", "-c", "sleep 60"]}' > "$d/agent.json"
  chmod -R a+rX "$d"
  cordon run -q "$d" > /dev/null 2>&1 &
  doc_bg "$!"
  local id=""
  for _ in $(seq 100); do
    id=$(cordon runs list --json --status running --limit 1 |
         python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["id"] if r else "")')
    [ -n "$id" ] && break
    sleep 0.1
  done
  [ -n "$id" ] || doc_fail "no running run for runs cancel"
  echo "$id"
}

# The deployment key's public half, for --key.
doc_pubkey() {
  env -u CORDON_URL -u CORDON_API_KEY cordon evidence key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])'
}

# A request held for approval, for APPROVAL_ID (and the transcript's id): a
# run of an agent whose POST to api.example.com the operator holds; through
# the API when CORDON_URL is set, as the example would see it.
doc_pending_approval() {
  local d=$DOC_TMP/asker
  mkdir -p "$d"
  cat > "$d/agent.json" <<'EOF'
{"name": "asker", "version": "1", "profile": "deployment",
 "entrypoint": ["python3", "/agent/main.py"],
 "egress": {"domains": ["api.example.com"]}}
EOF
  cat > "$d/main.py" <<EOF
import urllib.request as u
u.urlopen(u.Request("http://api.example.com:$APPROVAL_PORT/v1/x", data=b"x"), timeout=90)
EOF
  chmod -R a+rX "$d"
  local ref=$d
  if [ -n "${CORDON_URL:-}" ]; then
    cordon agent register "$d" > /dev/null || doc_fail "registering the asking agent"
    ref=asker
  fi
  cordon run -q "$ref" > /dev/null 2>&1 &
  doc_bg "$!"
  local id=""
  for _ in $(seq 150); do
    id=$(cordon approvals list --json |
         python3 -c 'import json,sys; a=[x for x in json.load(sys.stdin) if x.get("port")]; print(a[0]["id"] if a else "")')
    [ -n "$id" ] && break
    sleep 0.1
  done
  [ -n "$id" ] || doc_fail "no request waited for approval"
  echo "$id"
}
