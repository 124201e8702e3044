#!/bin/sh
# setup.sh — set up a Debian 12 machine for cn2, then run it or test it.
#
#   ./setup.sh run    install the build dependencies, build, run cn2 locally (make run)
#   ./setup.sh test   install build and test dependencies (Debian packages, then the npm
#                     test tools in tests/node), build, run every test (make check)
#   ./setup.sh bench  install the benchmark's tools (wrk, nginx), build, run make bench
#   ./setup.sh deps   only install (everything)
#
# Only packages that are missing are installed, so a second run installs
# nothing. Root runs apt-get directly; anyone else through sudo.
set -eu
cd "$(dirname "$0")"

BUILD_PKGS="make gcc libc6-dev pkg-config libuv1-dev libmbedtls-dev libcjson-dev
	libsqlite3-dev libnng-dev libcurl4-openssl-dev"
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev curl sqlite3 gdb systemd"
BENCH_PKGS="wrk nginx-light python3"

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"
	done
}

install() {
	m=$(missing "$@")
	[ -z "$m" ] && return 0
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "setup.sh: installing:" $m
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $m
}

# Node.js for the interop tests: Debian's, unless a node is already installed.
node_tools() {
	command -v node >/dev/null && command -v npm >/dev/null || install nodejs npm
	[ -f tests/node/package-lock.json ] || return 0
	# npm ci is cheap when the lockfile has not changed since the last install.
	if [ ! -f tests/node/node_modules/.package-lock.json ] ||
	    ! cmp -s tests/node/package-lock.json tests/node/node_modules/.lock-installed; then
		(cd tests/node && npm ci --no-audit --no-fund --loglevel=error &&
		    cp package-lock.json node_modules/.lock-installed)
	fi
}

jobs=$(nproc 2>/dev/null || echo 2)
case "${1:-}" in
run)
	install $BUILD_PKGS
	exec make -j"$jobs" run
	;;
test)
	install $BUILD_PKGS $TEST_PKGS
	node_tools
	exec make -j"$jobs" check
	;;
bench)
	install $BUILD_PKGS $BENCH_PKGS
	exec make -j"$jobs" bench
	;;
deps)
	install $BUILD_PKGS $TEST_PKGS $BENCH_PKGS
	node_tools
	;;
*)
	echo "usage: ./setup.sh run | test | bench | deps" >&2
	exit 2
	;;
esac
