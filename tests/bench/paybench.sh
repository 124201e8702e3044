#!/bin/sh
# paybench.sh BUILD_DIR — cn2-payments alone: challenges issued per second and
# credentials verified per second, for the test method and for lightning
# (against the fake LND of tests/fakes, over TLS, on loopback), driven over
# IPC the way the edge drives it (tests/bench/paybench.c). The real ledger
# takes each verification's pending transfer.
#
# Bounded: PAYBENCH_N requests per phase (default 2000), then everything stops.
set -eu
B=${1:-build}
N=${PAYBENCH_N:-2000}
tmp=$(mktemp -d /tmp/cn2-paybench-XXXXXX)
pids=""

cleanup() {
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	sleep 0.5
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

command -v node >/dev/null || { echo "paybench: node is missing (the fake LND runs on it)"; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port); HTTPS=$(port); DEMO=$(port); LND=$(port)
V="$tmp/var"

"$B/bin/cn2" init --dir "$V" --http-port "$HTTP" --https-port "$HTTPS" --demo-port "$DEMO" >/dev/null
printf '0201036c6e64%080d\n' 0 > "$V/secrets/lnd.macaroon"
chmod 600 "$V/secrets/lnd.macaroon"
node tests/fakes/fake.mjs lnd --port "$LND" --cert "$V/tls/cert.pem" --key "$V/tls/key.pem" \
	--macaroon "$V/secrets/lnd.macaroon" > "$tmp/lnd.log" 2>&1 &
pids="$!"
cat >> "$V/etc/payments.conf" <<CONF
lnd_url = https://localhost:$LND
lnd_macaroon_file = $V/secrets/lnd.macaroon
lnd_tls_cert = $V/tls/cert.pem
lightning_network = regtest
CONF
"$B/bin/cn2" up --dir "$V" > "$tmp/up.log" 2>&1 &
pids="$pids $!"
i=0
until grep -q 'Ctrl-C stops everything' "$tmp/up.log"; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "paybench: cn2 did not come up"; cat "$tmp/up.log"; exit 1; }
	sleep 0.1
done

echo "cn2-payments bench: $N requests per phase, up to 64 in flight, $(nproc) cores"
"$B/bench/paybench" "$V/run" test "$V/secrets/test.key" "$N"
"$B/bench/paybench" "$V/run" lightning "https://localhost:$LND" "$V/tls/cert.pem" "$N"
echo "(lightning challenges include an LND invoice over TLS and its durable record)"
