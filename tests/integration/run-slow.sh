#!/usr/bin/env bash
# make test's slow tests, in two lanes at once: the two that mostly wait
# (the Node MCP SDK's own 65 s timeout, the 15 s keep-alives of an idle
# follower) beside all the others. The waiting lane's sandboxes get host
# ids of their own (CORDON_HOSTID_BASE), so each lane's check for leftover
# sandbox processes sees only its own. Both lanes' output is shown; the
# exit status fails if either failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
waiting=(tests/integration/test_mcp_node.py::test_official_sdk_agent
	 tests/integration/test_tenants.py::test_idle_follow_streams_get_keep_alives)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CORDON_HOSTID_BASE=$(( ${CORDON_HOSTID_BASE:-1000000000} + 50000000 )) \
	"$PYTHON" -m pytest -q -p no:cacheprovider -m slow "${waiting[@]}" > "$log" 2>&1 &
lane=$!
deselect=()
for t in "${waiting[@]}"; do deselect+=(--deselect "$t"); done
"$PYTHON" -m pytest -q -p no:cacheprovider -m slow "${deselect[@]}" tests/integration
rc=$?
wait "$lane"
rc2=$?
echo "-- the waiting lane (${waiting[*]##*::}):"
cat "$log"
exit $(( rc != 0 || rc2 != 0 ))
