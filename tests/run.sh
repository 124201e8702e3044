#!/bin/sh
# tests/run.sh BUILD_DIR — run every test program, count TAP results, and end
# with one line "N passed, N failed". A program that dies without reporting
# counts as one failure. Exit status is 0 only when nothing failed.
set -u
B=${1:-build}
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

for t in "$B"/tests/unit/test_* "$B"/tests/scenario/test_*; do
	case $t in *.o|*.d) continue ;; esac
	[ -x "$t" ] || continue
	run_one "$(basename "$t")" "$t"
done
for t in tests/node/*.test.mjs; do
	[ -f "$t" ] || continue
	[ -d tests/node/node_modules ] || continue
	run_one "$(basename "$t")" node --test --test-reporter=tap "$t"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
