#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started, by the PIDs in its temp dir:
# slurmd, slurmctld, munged (any job still there is cancelled first, and
# reported: kitrun must leave none). Removes the state file, and the temp
# dir unless KEEP_SLURM_DIR is set.
# Usage: scripts/slurm-down.sh [STATE]
set -uo pipefail
state=${1:-out/slurm/env}
[ -e "$state" ] || { echo "slurm-down: no $state: nothing to stop"; exit 0; }
# shellcheck disable=SC1090
. "$state"
export SLURM_CONF
rc=0
left=$(timeout 20 squeue -h -o '%i %j %T' 2>/dev/null || true)
if [ -n "$left" ]; then
	echo "slurm-down: jobs left in the queue (cancelling):" >&2
	echo "$left" >&2
	timeout 20 scancel --full $(echo "$left" | awk '{print $1}') 2>/dev/null || true
fi
stop() { # NAME PIDFILE
	[ -s "$2" ] || return 0
	pid=$(cat "$2")
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	echo "slurm-down: $1 ($pid) ignored SIGTERM for 10 s: SIGKILL" >&2
	kill -9 "$pid" 2>/dev/null || true
}
stop slurmd "$SLURM_DIR/slurmd.pid"
stop slurmctld "$SLURM_DIR/slurmctld.pid"
stop munged "$SLURM_DIR/munge/munged.pid"
if [ -n "${KEEP_SLURM_DIR:-}" ]; then
	echo "slurm-down: stopped; logs kept in $SLURM_DIR"
else
	rm -rf "$SLURM_DIR"
	echo "slurm-down: stopped"
fi
rm -f "$state"
exit $rc
