#!/usr/bin/env bash
# make test's sanitizer pass, in two lanes at once: most files are waits
# (servers starting, runs ending, timeouts) as much as work, so two lanes
# on two cores take little more than half the time. Lane B takes a fixed
# list of files, chosen by their measured times to balance lane A, which
# takes every other file (so a new file runs, in A). Lane B's sandboxes get
# host ids of their own (CORDON_HOSTID_BASE), so each lane's check for
# leftover sandbox processes sees only its own. Two files run alone, once
# both lanes are done: test_teardown.py compares the host's state before
# and after, and test_warm_faults.py kills servers and their standbys
# outright and then checks that no cgroup is left, which the other lane's
# dying processes would make it see. Both lanes' output is shown; the exit status fails if any part did.
# Arguments go to every pytest (-m "not slow", -p no:cacheprovider).
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
dir=tests/integration
lane_b=(test_egress.py test_docs.py test_serve.py test_dashboard.py test_cli.py test_tenants.py
	test_schedules.py test_workers.py test_retention.py test_sdk.py)
alone=(test_warm_faults.py test_teardown.py)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CORDON_HOSTID_BASE=$(( ${CORDON_HOSTID_BASE:-1000000000} + 100000000 )) \
	"$PYTHON" -m pytest "$@" "${lane_b[@]/#/$dir/}" > "$log" 2>&1 &
lane=$!
skip=()
for t in "${lane_b[@]}" "${alone[@]}"; do skip+=(--ignore "$dir/$t"); done
"$PYTHON" -m pytest "$@" "${skip[@]}" "$dir"
rc=$?
wait "$lane"
rc2=$?
echo "-- lane B (${lane_b[*]}):"
cat "$log"
"$PYTHON" -m pytest "$@" "${alone[@]/#/$dir/}"
rc3=$?
exit $(( rc != 0 || rc2 != 0 || rc3 != 0 ))
