#!/bin/sh
# bench.sh BUILD_DIR — the router's cost per paid request (QUOTE + ASSIGN) by number of
# listings (router_bench.c); then paid requests through the whole cn2 pipeline, the same
# upstream behind nginx as a plain reverse proxy, and the upstream directly,
# in one run on this machine. Prints requests/s, p50/p99 latency and CPU µs
# per request of the proxy's processes for each, and the ratios.
#
# Bounded: each load lasts BENCH_SECONDS (default 5) with BENCH_CONNS
# connections (default 32) on loopback, then everything is stopped.
set -eu
B=${1:-build}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-32}
THREADS=2
BODY='{"model":"demo-1","messages":[{"role":"user","content":"hello"}]}'
top=$(pwd)
tmp=$(mktemp -d /tmp/cn2-bench-XXXXXX)
pids=""

cleanup() {
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	[ ! -f "$tmp/nginx.pid" ] || kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
	sleep 0.5
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# The router alone: QUOTE + ASSIGN with 100, 1,000 and 10,000 listings for one provider.
"$B/tests/bench/router_bench" "${BENCH_ROUTER_PAIRS:-4000}"
echo

for t in wrk nginx; do
	command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "bench: $t is missing (./setup.sh bench installs it)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port); HTTPS=$(port); DEMO=$(port); NGX=$(port)

# CPU ticks (user + system) of a list of pids.
ticks() {
	total=0
	for p in "$@"; do
		[ -r /proc/$p/stat ] || continue
		t=$(awk '{print $14 + $15}' /proc/$p/stat)
		total=$((total + t))
	done
	echo $total
}
HZ=$(getconf CLK_TCK)

"$B/bin/cn2" up --dir "$tmp/var" --http-port "$HTTP" --https-port "$HTTPS" --demo-port "$DEMO" \
	> "$tmp/up.log" 2>&1 &
pids="$!"
i=0
until grep -q 'Ctrl-C stops everything' "$tmp/up.log"; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "bench: cn2 did not come up"; cat "$tmp/up.log"; exit 1; }
	sleep 0.1
done
cn2_pids=$(pgrep -f "cn2-(edge|payments|router|vault|ledger|platform) -f $tmp/" | tr '\n' ' ')
demo_pid=$(pgrep -f "cn2-demo-upstream -l 127.0.0.1:$DEMO" | head -1)
key=$(cat "$tmp/var/secrets/demo.key")

# Enough single-use credentials for the run (made before the clock starts).
ncreds=${BENCH_CREDS:-40000}
# (libcurl resolves *.localhost to the loopback address itself.)
"$B/bench/mkcreds" "http://demo.localhost:$HTTP/v1/chat/completions" "$tmp/var/secrets/test.key" \
	"$ncreds" "$tmp/creds" "$BODY" 2>"$tmp/mkcreds.log" || true
if [ ! -s "$tmp/creds" ]; then cat "$tmp/mkcreds.log" "$tmp/up.log"; exit 1; fi

cat > "$tmp/nginx.conf" <<NGX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	upstream demo { server 127.0.0.1:$DEMO; keepalive 64; }
	server {
		listen 127.0.0.1:$NGX;
		location / {
			proxy_pass http://demo;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Authorization "Bearer $key";
			proxy_buffering off;
		}
	}
}
NGX
"$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"
sleep 0.3
ngx_pids=$(pgrep -f "nginx: (master|worker)" | tr '\n' ' ')

# run NAME URL HOSTHDR AUTH CREDS PIDS…: one load; prints one line of figures.
run() {
	name=$1 url=$2 host=$3 auth=$4 creds=$5
	shift 5
	c0=$(ticks "$@"); u0=$(ticks $demo_pid)
	out=$(CREDS="$creds" THREADS=$THREADS HOSTHDR="$host" AUTH="$auth" BODY="$BODY" \
		wrk -t$THREADS -c$CONNS -d${SECS}s -s tests/bench/paid.lua "$url" 2>&1)
	c1=$(ticks "$@"); u1=$(ticks $demo_pid)
	line=$(echo "$out" | grep '^RESULT') || { echo "$out"; exit 1; }
	eval "$(echo "$line" | sed 's/^RESULT //')"
	rps=$(awk "BEGIN{printf \"%.0f\", $requests/$seconds}")
	cpu=$(awk "BEGIN{printf \"%.1f\", ($c1-$c0)*1e6/$HZ/($requests>0?$requests:1)}")
	ucpu=$(awk "BEGIN{printf \"%.1f\", ($u1-$u0)*1e6/$HZ/($requests>0?$requests:1)}")
	printf "%-22s %9s %9s %9s %12s %14s %8s\n" "$name" "$rps" "$p50_us" "$p99_us" "$cpu" "$ucpu" "$non2xx"
	eval "${name%% *}_cpu=$cpu; ${name%% *}_rps=$rps; ${name%% *}_p50=$p50_us"
}

echo "cn2 bench: ${SECS}s per load, $CONNS connections, $THREADS wrk threads, $(nproc) cores"
printf "%-22s %9s %9s %9s %12s %14s %8s\n" "target" "req/s" "p50 µs" "p99 µs" "proxy CPU µs" "upstream CPU µs" "non-2xx"
run "direct" "http://127.0.0.1:$DEMO/v1/chat/completions" "" "Bearer $key" "" 
run "nginx (reverse proxy)" "http://127.0.0.1:$NGX/v1/chat/completions" "" "" "" $ngx_pids
for d in edge payments router vault ledger platform; do
	eval "cpu0_$d=$(ticks $(pgrep -f "cn2-$d -f $tmp/" | head -1))"
done
run "cn2 (paid, 6 daemons)" "http://127.0.0.1:$HTTP/v1/chat/completions" "demo.localhost" "" "$tmp/creds" $cn2_pids
cn2_req=$requests
echo
printf "cn2 CPU µs per paid request, by daemon:"
for d in edge payments router vault ledger platform; do
	p=$(pgrep -f "cn2-$d -f $tmp/" | head -1)
	t=$(ticks $p)
	eval "t0=\${cpu0_$d:-0}"
	printf " %s %s" "$d" "$(awk "BEGIN{printf \"%.0f\", ($t-$t0)*1e6/$HZ/($cn2_req>0?$cn2_req:1)}")"
done
echo
awk "BEGIN{printf \"cn2 / nginx: CPU per request %.2fx, throughput %.2fx, p50 latency %.2fx\n\", $cn2_cpu/($nginx_cpu>0?$nginx_cpu:1), $cn2_rps/$nginx_rps, $cn2_p50/$nginx_p50}"
echo "(design target: paid requests at no more than 3x nginx's CPU per request)"
