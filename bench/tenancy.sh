#!/usr/bin/env bash
# Load benchmark of Lectern's tenancy layer (see docs/benchmarks.md).
#
# Builds ./cmd/lectern, bench/bare and bench/loadtool, runs them on
# 127.0.0.1 in a temporary directory, and measures:
#   1. req/s of GET /health on the bare net/http baseline, and of GET /health
#      and GET /t/t1/health on Lectern, interleaved, ROUNDS times, medians;
#   2. req/s of GET /t/t1/exams with 50 exams (same rounds);
#   3. tenant cold load (PUT -> first 200) over 50 new tenants;
#   4. RSS and OS threads per loaded idle tenant over 1,000 tenants (MEM_N),
#      the RSS once each has answered a request, and the idle CPU then;
#   5. tenant cold load again, now with those tenants stored and loaded;
#   6. lazy first load of stored tenants after a restart.
#
# Knobs (environment): PIN=1 pins servers to CPU 0 and every client to CPU 1
# (PIN=0: no pinning); DURATION=5s per wrk run; ROUNDS=6; CONNS=64;
# THREADS=2 (wrk threads); COLD_N=50; MEM_N=1000; THROUGHPUT=0 skips parts 1
# and 2. About 3 minutes.
set -euo pipefail
# The load comes from one address: measure the server, not its per-client limit.
export RATE_LIMIT_RPM=${RATE_LIMIT_RPM:-0}

cd "$(dirname "$0")/.."
PIN=${PIN:-1}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-6}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
COLD_N=${COLD_N:-50}
MEM_N=${MEM_N:-1000}
THROUGHPUT=${THROUGHPUT:-1}
EXAMS=50
KEY=bench-admin-key

for tool in wrk taskset go curl; do
	command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lectern-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

if [[ $PIN == 1 ]]; then
	SRV=(taskset -c 0)
	CLI=(taskset -c 1)
else
	SRV=()
	CLI=()
fi

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3-)"
echo "== pinning: PIN=$PIN (servers: ${SRV[*]:-any CPU}; wrk/loadtool: ${CLI[*]:-any CPU}); wrk -t$THREADS -c$CONNS -d$DURATION x $ROUNDS rounds"

echo "== building"
mkdir -p "$WORK/bin"
go build -o "$WORK/bin/lectern" ./cmd/lectern
go build -o "$WORK/bin/bare" ./bench/bare
go build -o "$WORK/bin/loadtool" ./bench/loadtool

# wait_addr FILE: waits for "... listening on http://ADDR" in FILE, prints ADDR.
wait_addr() {
	for _ in $(seq 200); do
		if grep -q 'listening on http://' "$1" 2>/dev/null; then
			sed -n 's|.*listening on http://||p' "$1" | head -1
			return
		fi
		sleep 0.05
	done
	echo "server did not start; see $1" >&2
	cat "${1%.out}.err" >&2 || true
	exit 1
}

start_lectern() {
	DATA_DIR="$WORK/default/data" UPLOADS_DIR="$WORK/default/uploads" \
		TENANT_DB_PATH="$WORK/system/tenants.sqlite3" TENANT_ADMIN_KEY="$KEY" LOG_LEVEL=warn \
		"${SRV[@]}" "$WORK/bin/lectern" serve --addr 127.0.0.1:0 >"$WORK/lectern.out" 2>>"$WORK/lectern.err" &
	LECTERN_PID=$!
	pids+=("$LECTERN_PID")
	LECTERN=$(wait_addr "$WORK/lectern.out")
}

stop_lectern() {
	kill -TERM "$LECTERN_PID"
	wait "$LECTERN_PID" || true
	: >"$WORK/lectern.out"
}

loadtool() { "${CLI[@]}" "$WORK/bin/loadtool" "$@"; }

# cputicks PID: user+system CPU time of PID, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# busyticks: CPU time (clock ticks) all CPUs spent in user, system or
# stolen by the hypervisor, from /proc/stat. Interrupt and softirq time is
# left out: on loopback it is mostly our own TCP traffic.
busyticks() { awk '/^cpu / {print $2 + $3 + $4 + $9}' /proc/stat; }

# measure URL PID: one wrk run in this (sub)shell; prints requests/s, the
# server's CPU time per request in microseconds, and "other": how many CPUs'
# worth of time went to neither the server nor wrk (other processes on the
# machine: the noise). Fails on non-2xx answers.
measure() {
	local c0 c1 b0 b1 t0 t1 self
	c0=$(cputicks "$2")
	b0=$(busyticks)
	t0=$(date +%s.%N)
	"${CLI[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$1" >"$WORK/wrk.txt"
	t1=$(date +%s.%N)
	b1=$(busyticks)
	c1=$(cputicks "$2")
	# CPU time of this subshell's children (wrk, mostly), in ticks.
	self=$(times | awk -v hz="$HZ" 'NR == 2 {
		split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz}')
	if grep -q 'Non-2xx' "$WORK/wrk.txt"; then
		cat "$WORK/wrk.txt" >&2
		exit 1
	fi
	# Socket errors (timeouts when another process starves the server) are
	# shown with the run, not fatal.
	awk -v c=$((c1 - c0)) -v o=$((b1 - b0 - (c1 - c0) - self)) -v hz="$HZ" -v t="$t0" -v t1="$t1" '
		/ requests in / {n = $1}
		/^Requests\/sec:/ {r = $2}
		/Socket errors/ {e = ", SOCKET ERRORS:" $3 $4 $5 $6 $7 $8 $9 $10}
		END {printf "%s %.2f %.2f%s\n", r, c / hz * 1e6 / n, (o > 0 ? o : 0) / hz / (t1 - t), e}' "$WORK/wrk.txt"
}

median() {
	tr ' ' '\n' | sed '/^$/d' | sort -g |
		awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2] + v[NR/2+1]) / 2}'
}

echo "== starting servers"
"${SRV[@]}" "$WORK/bin/bare" -addr 127.0.0.1:0 >"$WORK/bare.out" 2>"$WORK/bare.err" &
BARE_PID=$!
pids+=("$BARE_PID")
BARE=$(wait_addr "$WORK/bare.out")
start_lectern
mkdir -p "$WORK/tenants"
loadtool exams -data "$WORK/tenants/t1/data" -n "$EXAMS"
curl -fsS -X PUT -H "X-Admin-Key: $KEY" "http://$LECTERN/admin/tenants/t1" \
	-d "{\"data_dir\":\"$WORK/tenants/t1/data\",\"uploads_dir\":\"$WORK/tenants/t1/uploads\"}"
echo
for u in "http://$BARE/health" "http://$LECTERN/health" "http://$LECTERN/t/t1/health"; do
	body=$(curl -fsS "$u")
	[[ $body == "$(curl -fsS "http://$BARE/health")" ]] || { echo "$u answered $body, unlike the bare server" >&2; exit 1; }
done
n=$(curl -fsS "http://$LECTERN/t/t1/exams" | grep -o '"exam_id"' | wc -l)
[[ $n == "$EXAMS" ]] || { echo "/t/t1/exams lists $n exams, want $EXAMS" >&2; exit 1; }
# The baseline of the cached read: a bare server answering the very bytes
# of /t/t1/exams (with Content-Length), pinned like the bare /health one.
curl -fsS "http://$LECTERN/t/t1/exams" >"$WORK/exams.json"
"${SRV[@]}" "$WORK/bin/bare" -addr 127.0.0.1:0 -body "$WORK/exams.json" >"$WORK/bare2.out" 2>"$WORK/bare2.err" &
BARE2_PID=$!
pids+=("$BARE2_PID")
BARE2=$(wait_addr "$WORK/bare2.out")
cmp -s "$WORK/exams.json" <(curl -fsS "http://$BARE2/body") || { echo "the bare /body differs from /t/t1/exams" >&2; exit 1; }

declare -A URL=(
	[bare]="http://$BARE/health"
	[root]="http://$LECTERN/health"
	[tenant]="http://$LECTERN/t/t1/health"
	[bareexams]="http://$BARE2/body"
	[exams]="http://$LECTERN/t/t1/exams"
	[students]="http://$LECTERN/t/t1/exam/BENCH_EXAM_000/students?limit=50"
)
declare -A PID=([bare]=$BARE_PID [root]=$LECTERN_PID [tenant]=$LECTERN_PID [bareexams]=$BARE2_PID [exams]=$LECTERN_PID [students]=$LECTERN_PID)
ORDER=(bare root tenant bareexams exams students)
declare -A LABEL=(
	[bare]="bare /health"
	[root]="lectern /health"
	[tenant]="lectern /t/t1/health"
	[bareexams]="bare, /t/t1/exams bytes"
	[exams]="lectern /t/t1/exams"
	[students]="lectern …/students"
)
declare -A RUNS=() CPU=()

if [[ $THROUGHPUT == 1 ]]; then
	echo "== warm-up (2s each)"
	for k in "${ORDER[@]}"; do
		"${CLI[@]}" wrk -t"$THREADS" -c"$CONNS" -d2s "${URL[$k]}" >/dev/null
	done

	echo "== throughput, interleaved (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "   each run: req/s (server CPU per request, other = CPUs busy with neither server nor wrk)"
	for r in $(seq "$ROUNDS"); do
		line="round $r:"
		# Rotate the order each round, so no target always runs first or last.
		rot=$(((r - 1) % ${#ORDER[@]}))
		for k in "${ORDER[@]:rot}" "${ORDER[@]:0:rot}"; do
			read -r v c o < <(measure "${URL[$k]}" "${PID[$k]}")
			RUNS[$k]="${RUNS[$k]:-} $v"
			CPU[$k]="${CPU[$k]:-} $c"
			line+=" $k=$v ($c us, other $o)"
		done
		echo "$line"
	done
	echo "(load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
	declare -A MED=() RATIOS=() MEDCPU=()
	for k in "${ORDER[@]}"; do
		MED[$k]=$(echo "${RUNS[$k]}" | median)
		MEDCPU[$k]=$(echo "${CPU[$k]}" | median)
		# Ratio to the bare run of the same round: robust to slow drift of the
		# machine's speed, which is large here.
		read -ra b <<<"${RUNS[bare]}"
		read -ra v <<<"${RUNS[$k]}"
		RATIOS[$k]=$(for i in "${!v[@]}"; do awk -v a="${v[$i]}" -v b="${b[$i]}" 'BEGIN {printf "%.3f ", a / b}'; done)
	done
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
	printf '%-21s %8s %8s %10s %9s %8s   %s\n' "" "median" "ratio" "median of" "median" "CPU/req" ""
	printf '%-21s %8s %8s %10s %9s %8s   %s\n' target "req/s" "to bare" "per-round" "server" "to bare" "per-round req/s ratios"
	printf '%-21s %8s %8s %10s %9s %8s\n' "" "" "" "ratios" "CPU/req" ""
	for k in "${ORDER[@]}"; do
		printf '%-21s %8.0f %8s %10s %6.1f us %8s   %s\n' "${LABEL[$k]}" "${MED[$k]}" "$(ratio "${MED[$k]}" "${MED[bare]}")" \
			"$(echo "${RATIOS[$k]}" | median)" "${MEDCPU[$k]}" "$(ratio "${MEDCPU[$k]}" "${MEDCPU[bare]}")" "${RATIOS[$k]}"
	done

	read -ra be <<<"${RUNS[bareexams]}"
	read -ra ex <<<"${RUNS[exams]}"
	echo "/t/t1/exams against the bare server answering its bytes: ratio of medians $(ratio "${MED[exams]}" "${MED[bareexams]}"), per round: $(for i in "${!ex[@]}"; do ratio "${ex[$i]}" "${be[$i]}"; printf ' '; done)"

fi

echo "== tenant cold load (PUT is eager: it builds and starts the tenant)"
loadtool cold -addr "$LECTERN" -key "$KEY" -root "$WORK/tenants" -prefix cold -n "$COLD_N" -pid "$LECTERN_PID"

echo "== memory per loaded idle tenant (pid $LECTERN_PID; load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
loadtool mem -addr "$LECTERN" -key "$KEY" -root "$WORK/tenants" -prefix mem -n "$MEM_N" -pid "$LECTERN_PID"

echo "== tenant cold load with $((COLD_N + MEM_N + 1)) tenants stored and loaded (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
loadtool cold -addr "$LECTERN" -key "$KEY" -root "$WORK/tenants" -prefix full -n "$COLD_N" -pid "$LECTERN_PID"

echo "== lazy first load after restart ($((2 * COLD_N + MEM_N + 1)) tenants stored, none loaded)"
stop_lectern
start_lectern
loadtool lazy -addr "$LECTERN" -prefix cold -n "$COLD_N"
stop_lectern
echo "== done"
