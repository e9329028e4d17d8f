#!/bin/sh
# make test's end-to-end check of `make nightly` (README, "Nightly"): two
# nights into a fresh history, the second with a deliberately slower spec
# (examples/nightly/slower: its onboot task sleeps 3 s). The first night must
# pass the check, the second must fail it naming the configuration and a
# metric the sleep delays (boot.all_ready, boot.task.pause, guest.all_ready
# or guest.userspace: under host load the whole-boot times can vary by more
# than the sleep, so five runs against five may not separate them; the
# guest's own time from init to all-ready is hardly moved by it), and the
# dashboard must show the change of that metric in Chromium.
set -eu
MAKE=${MAKE:-make}
out=out/nightly-test
rm -rf "$out"
start=$(date +%s)
night() {
	# One configuration, five runs, no warm-up: the smallest bench in which
	# five slow runs against five fast ones can be significant (p < 0.01).
	$MAKE --no-print-directory nightly NIGHTLY_SPECS="$1" NIGHTLY_RUNS=5 \
		NIGHTLY_FLAGS="--warmup 0 --cooldown 500ms" NIGHTLY_OUT="$out"
}
night examples/nightly/nightly.yml
echo "nightly-test: the second, slower night must fail the history check (make reports it as an error):"
if night examples/nightly/slower/nightly.yml; then
	echo "nightly-test: FAIL: the second, slower night passed the history check" >&2
	exit 1
fi
config=nightly/x86_64/
line=$(grep -E "^${config}[^ ]* +(boot\.all_ready|boot\.task\.pause|guest\.all_ready|guest\.userspace) " "$out/check.txt" | head -n 1)
if [ -z "$line" ]; then
	echo "nightly-test: FAIL: the check did not name ${config}… with a boot time the sleep delays:" >&2
	cat "$out/check.txt" >&2
	exit 1
fi
set -- $line
KITRUN_NIGHTLY_SITE="$PWD/$out/site" KITRUN_NIGHTLY_CONFIG="$1" KITRUN_NIGHTLY_METRIC="$2" \
	KITRUN_TEST_ARTIFACTS="$PWD/out/artifacts" \
	${GO:-go} test -count=1 -run '^TestNightlySite$' -v ./bench/history/dashboard
echo "nightly-test: ok: two nights recorded, the slowdown flagged and shown, in $(( $(date +%s) - start ))s"
