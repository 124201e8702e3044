#!/bin/sh
# tests/run.sh BUILD_DIR... — run every test program of each build directory,
# count TAP results, and end with one line "N passed, N failed". A program
# that fails without reporting counts as one failure; one that succeeds
# without TAP output (a fuzz run) as one pass. With FUZZ_SECONDS > 0, every
# libFuzzer target in <build>/fuzz also runs that long from its seed corpus.
# Exit status is 0 only when nothing failed.
set -u
[ $# -gt 0 ] || set -- build
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_one() {
	name=$1; shift
	: > "$log"
	CMOCKA_MESSAGE_OUTPUT=TAP timeout "${TEST_TIMEOUT:-600}" "$@" > "$log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc"
	elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		p=1
		echo "ok - $name"
	fi
	grep -E '^(not ok|ok) ' "$log" | sed "s|^|$name: |"
	if [ "$f" -ne 0 ] || [ "${VERBOSE:-0}" = 1 ]; then
		echo "---- output of $name ----"
		tail -n 80 "$log"
		echo "----"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

for B in "$@"; do
	tag=$(basename "$B")
	for t in "$B"/tests/unit/test_* "$B"/tests/scenario/test_*; do
		case $t in *.o|*.d) continue ;; esac
		[ -x "$t" ] || continue
		run_one "$tag/$(basename "$t")" "$t"
	done
	[ "${FUZZ_SECONDS:-0}" -gt 0 ] || continue
	for f in "$B"/fuzz/fuzz_*; do
		[ -x "$f" ] && [ -f "$f" ] || continue
		n=$(basename "$f")
		mkdir -p "$B/fuzz/corpus/$n"
		dict=""
		[ ! -f "tests/fuzz/$n.dict" ] || dict="-dict=tests/fuzz/$n.dict"
		run_one "$tag/$n" "$f" -max_total_time="$FUZZ_SECONDS" \
			-artifact_prefix="$B/fuzz/$n-" $dict "$B/fuzz/corpus/$n" "tests/fuzz/corpus/$n"
	done
done
for t in tests/node/*.test.mjs; do
	[ -f "$t" ] || continue
	[ -d tests/node/node_modules ] || continue
	run_one "$(basename "$t")" node --test --test-reporter=tap "$t"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
