#!/bin/sh
# kitrun's nightly performance job, for cron or a systemd timer: update the
# checkout, run `make nightly` (bench matrix → record → check → dashboard),
# and publish the page. The history is a file that outlives checkouts.
#
# cron (02:30 every night, as a user that may run QEMU):
#   30 2 * * *  KITRUN_DIR=$HOME/kitrun PUBLISH_DIR=/var/www/kitrun /path/to/kitrun-nightly.sh
# systemd: see kitrun-nightly.service and kitrun-nightly.timer beside this.
#
# Exit status: make's (non-zero when the history check found a regression,
# or when the bench failed); the page is published in either case.
set -eu
: "${KITRUN_DIR:?set KITRUN_DIR to a kitrun checkout}"
STATE_DIR=${STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/kitrun/nightly}
PUBLISH_DIR=${PUBLISH_DIR:-}
SPECS=${SPECS:-examples/nightly/nightly.yml examples/minimal.yml}
RUNS=${RUNS:-10}
mkdir -p "$STATE_DIR"
log="$STATE_DIR/$(date -u +%Y%m%dT%H%M%SZ).log"
# One nightly at a time: a slow night must not overlap the next (the
# history itself takes concurrent writers, but two benches on one host
# measure each other).
exec 9>"$STATE_DIR/lock"
if ! flock -n 9; then
	echo "kitrun-nightly: another nightly is running" >&2
	exit 1
fi
cd "$KITRUN_DIR"
git pull --ff-only >>"$log" 2>&1 || echo "kitrun-nightly: git pull failed; benching the checkout as it is" >>"$log"
rc=0
make nightly NIGHTLY_SPECS="$SPECS" NIGHTLY_RUNS="$RUNS" NIGHTLY_OUT="$STATE_DIR" >>"$log" 2>&1 || rc=$?
if [ -n "$PUBLISH_DIR" ] && [ -f "$STATE_DIR/site/index.html" ]; then
	mkdir -p "$PUBLISH_DIR"
	# runs/ only grows; index.html last, so that a reader never follows a
	# link to a raw result not copied yet.
	cp -R "$STATE_DIR/site/runs" "$PUBLISH_DIR/"
	cp "$STATE_DIR/site/index.html" "$PUBLISH_DIR/index.html.new"
	mv "$PUBLISH_DIR/index.html.new" "$PUBLISH_DIR/index.html"
fi
if [ "$rc" -ne 0 ]; then
	echo "kitrun-nightly: make nightly exited $rc; see $log" >&2
	cat "$STATE_DIR/check.txt" >&2 2>/dev/null || true
fi
exit "$rc"
