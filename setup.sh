#!/bin/sh
# setup.sh — set up a Debian 12 machine for cn2, then run it or test it.
#
#   ./setup.sh run    install the build dependencies, build, run cn2 locally (make run)
#   ./setup.sh test   install build and test dependencies, build, run every test (make check)
#   ./setup.sh deps   only install (both sets)
#
# Only packages that are missing are installed, so a second run installs
# nothing. Root runs apt-get directly; anyone else through sudo.
set -eu
cd "$(dirname "$0")"

BUILD_PKGS="make gcc libc6-dev pkg-config libuv1-dev libmbedtls-dev libcjson-dev
	libsqlite3-dev libnng-dev libcurl4-openssl-dev"
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev curl sqlite3"

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

jobs=$(nproc 2>/dev/null || echo 2)
case "${1:-}" in
run)
	install $BUILD_PKGS
	exec make -j"$jobs" run
	;;
test)
	install $BUILD_PKGS $TEST_PKGS
	exec make -j"$jobs" check
	;;
deps)
	install $BUILD_PKGS $TEST_PKGS
	;;
*)
	echo "usage: ./setup.sh run | test | deps" >&2
	exit 2
	;;
esac
