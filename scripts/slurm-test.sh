#!/usr/bin/env bash
# make test's Slurm part (README, "Executors"): on the one-node cluster of
# scripts/slurm-up.sh, a sharded `kitrun test` of the shipped cases, then
# each fault of the Slurm executor, for real:
#   node lost   scontrol update state=down while a shard runs: submitted
#               again once (passes), or with --requeues 0 reported failed
#   timeout     a shard (both arches) with a 1-minute --slurm-time: its finished tests
#               kept, the others failed with TIMEOUT
#   cancelled   scancel of the run's jobs from outside: failed, CANCELLED
#   Ctrl-C      SIGINT to kitrun: exit 130, every job of the run cancelled
#   controller  a SLURM_CONF pointing at a dead port: a clear error
# and after each, that nothing of the run is left in the queue.
# Usage: scripts/slurm-test.sh [STATE]   (STATE from slurm-up.sh)
set -uo pipefail
state=${1:-out/slurm/env}
# shellcheck disable=SC1090
. "$state"
export SLURM_CONF
K=${KITRUN:-bin/kitrun}
OUT=${SLURM_TEST_OUT:-out/slurm-test}
SHARDS=${SLURM_TEST_SHARDS:-2}
rm -rf "$OUT"; mkdir -p "$OUT"
node=$(sinfo -h -o %N | head -1)
fails=0
t0=$(date +%s)
say() { echo "slurm-test: $*"; }
fail() { echo "slurm-test: FAIL: $*" >&2; fails=$((fails + 1)); }
# none_left: no job of any kitrun run queued or running.
none_left() {
	local left
	left=$(squeue -h -t PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED -o '%i %j %T' | grep ' kitrun-' || true)
	[ -z "$left" ] || { fail "$1: jobs left in the queue: $left"; scancel $(echo "$left" | awk '{print $1}'); }
}
# wait_running: the id of a running job of a kitrun run (deadline 120 s).
wait_running() {
	local id
	for _ in $(seq 240); do
		id=$(squeue -h -t RUNNING -o '%i %j' | awk '$2 ~ /^kitrun-/ {print $1; exit}')
		[ -n "$id" ] && { echo "$id"; return 0; }
		sleep 0.5
	done
	return 1
}
# json EXPR FILE: evaluate a Python expression on results.json as d.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[2])); print($1)" "$@"; }

# 1. The shipped cases, sharded, against the same reports as a local run.
s=$(date +%s)
$K test testcases/ --executor slurm --shards "$SHARDS" -j 1 --results "$OUT/sharded" --junit "$OUT/sharded.xml" \
	> "$OUT/sharded.log" 2>&1
rc=$?
tail -3 "$OUT/sharded.log"
say "sharded run: exit $rc in $(( $(date +%s) - s )) s"
[ $rc -eq 0 ] || { fail "the sharded run failed (exit $rc; $OUT/sharded.log)"; tail -40 "$OUT/sharded.log" >&2; }
planned=$(find testcases/cases -name test.yml | wc -l)
got=$(json 'len(d["tests"])' "$OUT/sharded/results.json")
[ "$got" -eq "$planned" ] || fail "the merged results hold $got tests, the cases $planned"
nonode=$(json 'sum(1 for t in d["tests"] if not t.get("node"))' "$OUT/sharded/results.json")
[ "$nonode" -eq 0 ] || fail "$nonode merged results have no node"
grep -q "<property name=\"node\" value=\"$node\">" "$OUT/sharded.xml" || fail "the JUnit report names no node"
if [ -s out/test-results/results.json ]; then
	# make test's local run of the same cases: the same tests, the same outcomes.
	a=$(json '" ".join(sorted(t["name"]+"="+t["status"] for t in d["tests"]))' out/test-results/results.json)
	b=$(json '" ".join(sorted(t["name"]+"="+t["status"] for t in d["tests"]))' "$OUT/sharded/results.json")
	[ "$a" = "$b" ] && say "sharded results match the local run's ($got tests)" || fail "sharded and local results differ:
local:   $a
sharded: $b"
	[ ! -s out/junit.xml ] || python3 - out/junit.xml "$OUT/sharded.xml" <<'PY' || fail "sharded and local JUnit reports differ"
import sys, xml.etree.ElementTree as ET
a, b = (ET.parse(f).getroot() for f in sys.argv[1:3])
cases = lambda r: sorted((c.get("classname"), c.get("name"), [x.tag for x in c if x.tag != "properties" and x.tag != "system-out"]) for c in r.iter("testcase"))
assert [a.get(k) for k in ("tests", "failures", "errors", "skipped")] == [b.get(k) for k in ("tests", "failures", "errors", "skipped")]
assert cases(a) == cases(b), (cases(a), cases(b))
PY
fi
none_left "sharded run"

# The Go test that needs the cluster, required to run here.
KITRUN_SLURM_REQUIRED=1 ${GO:-go} test -count=1 -run TestSlurmClusterRunsAJob ./testcases/executor \
	|| fail "TestSlurmClusterRunsAJob"

# A small bench through Slurm: a job for examples/minimal, 2 runs, recorded;
# then its runs split over 2 jobs (--same-node=false), merged.
s=$(date +%s)
$K bench examples/minimal.yml --executor slurm --runs 2 --results-dir "$OUT/bench" --format json -o "$OUT/bench.json" \
	--record --db "$OUT/history.db" > "$OUT/bench.log" 2>&1
rc=$?
[ $rc -eq 0 ] || { fail "bench through Slurm: exit $rc ($OUT/bench.log)"; tail -20 "$OUT/bench.log" >&2; }
n=$(json 'sum(1 for c in d["configs"] for s in c["samples"] if s.get("node") and not s.get("error"))' "$OUT/bench.json" 2>/dev/null || echo 0)
[ "$n" -eq 2 ] || fail "bench through Slurm: $n good samples with a node, want 2"
grep -q "recorded as run" "$OUT/bench.log" || fail "bench through Slurm: not recorded"
$K bench examples/minimal.yml --executor slurm --same-node=false --shards 2 --runs 2 --results-dir "$OUT/bench-split" \
	--format json -o "$OUT/bench-split.json" > "$OUT/bench-split.log" 2>&1 || fail "split bench: exit $? ($OUT/bench-split.log)"
n=$(json 'len(d["configs"][0]["samples"])' "$OUT/bench-split.json" 2>/dev/null || echo 0)
[ "$n" -eq 2 ] && grep -q "submitted" "$OUT/bench-split.log" || fail "split bench: $n samples merged, want 2"
say "bench: 2 runs in one job, and split over 2 jobs and merged, in $(( $(date +%s) - s )) s"
none_left "bench"

# 2. Node lost mid-shard, once: the shard is submitted again and passes.
nodelost() { # NAME REQUEUES
	$K test testcases/ --executor slurm --shards 1 --requeues "$2" --run 'readiness/*' --results "$OUT/$1" > "$OUT/$1.log" 2>&1 &
	local pid=$! id
	id=$(wait_running) || { fail "$1: no job ran"; kill $pid; wait $pid; return; }
	sleep 2
	scontrol update nodename="$node" state=down reason=kitrun-slurm-test
	sleep 3
	scontrol update nodename="$node" state=resume 2>/dev/null || true # ReturnToService=2 may have done it
	wait $pid
	echo $?
}
rc=$(nodelost nodelost 1 | tail -1)
grep -q "submitting it again" "$OUT/nodelost.log" || fail "node lost: the shard was not submitted again ($OUT/nodelost.log)"
[ "$rc" = 0 ] || fail "node lost once: exit $rc, want 0 ($OUT/nodelost.log)"
say "node lost once: requeued, exit $rc"
none_left "node lost once"
rc=$(nodelost nodelost-norequeue 0 | tail -1)
[ "$rc" = 9 ] || fail "node lost, no requeue left: exit $rc, want 9 ($OUT/nodelost-norequeue.log)"
grep -q "NODE_FAIL" "$OUT/nodelost-norequeue/results.json" || fail "node lost: the results do not say NODE_FAIL"
say "node lost, no requeue left: exit $rc, tests failed with NODE_FAIL"
none_left "node lost twice"

# 3. A job that times out: 1 minute (Slurm's smallest limit) for every case
# on both arches in one shard, which takes well over 2 minutes even on a
# quiet host (x86_64 alone may finish within the minute).
$K test testcases/ --executor slurm --shards 1 --slurm-time 1 --arch x86_64,aarch64 --results "$OUT/timeout" > "$OUT/timeout.log" 2>&1
rc=$?
[ $rc -eq 9 ] || fail "timeout: exit $rc, want 9 ($OUT/timeout.log)"
n=$(json 'sum(1 for t in d["tests"] if "TIMEOUT" in t.get("message",""))' "$OUT/timeout/results.json")
p=$(json 'd["passed"]' "$OUT/timeout/results.json")
[ "$n" -gt 0 ] || fail "timeout: no test reported with TIMEOUT"
say "timeout: exit $rc, $p test(s) finished and kept, $n failed with TIMEOUT"
none_left "timeout"

# 4. scancel from outside: the shard's tests fail with CANCELLED.
$K test testcases/ --executor slurm --shards 1 --run 'boot/*' --results "$OUT/scancel" > "$OUT/scancel.log" 2>&1 &
pid=$!
if id=$(wait_running); then sleep 2; scancel "$id"; fi
wait $pid; rc=$?
[ $rc -eq 9 ] && grep -q CANCELLED "$OUT/scancel/results.json" || fail "scancel: exit $rc, want 9 with CANCELLED in the results"
say "scancel: exit $rc, tests failed with CANCELLED"
none_left "scancel"

# 5. Ctrl-C: every job of the run cancelled, exit 130.
$K test testcases/ --executor slurm --shards 2 --results "$OUT/sigint" > "$OUT/sigint.log" 2>&1 &
pid=$!
wait_running >/dev/null && sleep 2
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] || fail "Ctrl-C: exit $rc, want 130 ($OUT/sigint.log)"
say "Ctrl-C: exit $rc"
none_left "Ctrl-C"

# 6. An unreachable controller: a clear error, nothing submitted.
sed 's/^SlurmctldPort=.*/SlurmctldPort=1/' "$SLURM_CONF" > "$OUT/dead.conf"
SLURM_CONF=$OUT/dead.conf $K test testcases/ --executor slurm --results "$OUT/dead" > "$OUT/dead.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "controller .*unreachable" "$OUT/dead.log" || fail "dead controller: exit $rc: $(cat "$OUT/dead.log")"
say "dead controller: exit $rc: $(grep -o 'the Slurm controller.*' "$OUT/dead.log" | cut -c1-160)"

say "done in $(( $(date +%s) - t0 )) s, $fails failure(s)"
[ $fails -eq 0 ]
