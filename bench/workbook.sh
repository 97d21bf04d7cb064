#!/usr/bin/env bash
# RSS benchmark of hostile score sheets (issue 8; see docs/benchmarks.md).
#
# Builds ./cmd/lectern (and, with BASE=1, the same command at BASE_REF in a
# temporary git worktree, removed once built), writes the shapes of
# bench/workbook/gen, and for each binary and shape:
#   1. starts a fresh server on 127.0.0.1 with a temporary DATA_DIR and
#      UPLOADS_DIR, creates tenants t1..t3 (PUT /admin/tenants/{id}) and
#      loads them, then reads the idle VmRSS;
#   2. posts the shape to /t/t1/exam/upload/start (then to t1, t2 and t3 at
#      once), polls /exam/upload/status until failed or done, sampling VmRSS
#      every 20 ms, and reads VmHWM (reset to the idle RSS before the job);
#   3. prints MB above idle (peak sampled VmRSS and VmHWM) and wall time.
# A fresh process per measurement, so memory one run leaves mapped does not
# count against the next.
#
# Knobs: BASE=1 (0: the current tree only); BASE_REF=HEAD; BASE_DIR=
# /tmp/lectern-base; SHAPES="shared.xlsx bigsheet.xlsx okbig.xlsx
# bigname.csv"; TIMEOUT=600 seconds per measurement.
set -euo pipefail
# The load comes from one address: measure the server, not its per-client limit.
export RATE_LIMIT_RPM=${RATE_LIMIT_RPM:-0}

cd "$(dirname "$0")/.."
BASE=${BASE:-1}
BASE_REF=${BASE_REF:-HEAD}
BASE_DIR=${BASE_DIR:-/tmp/lectern-base}
SHAPES=${SHAPES:-"shared.xlsx bigsheet.xlsx okbig.xlsx bigname.csv"}
TIMEOUT=${TIMEOUT:-600}
KEY=bench-admin-key

for tool in go curl jq git bc; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lectern-workbook.XXXXXX")
SERVER_PID=
SAMPLER_PID=
cleanup() {
	[[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
	if [[ -n $SERVER_PID ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3-)"
echo "== building"
mkdir -p "$WORK/bin" "$WORK/files"
go build -o "$WORK/bin/lectern-new" ./cmd/lectern
go build -o "$WORK/bin/gen" ./bench/workbook/gen
BINS=(new)
if [[ $BASE == 1 ]]; then
	[[ -e $BASE_DIR ]] && { echo "$BASE_DIR exists; remove it or set BASE_DIR" >&2; exit 1; }
	git worktree add --detach "$BASE_DIR" "$BASE_REF" >/dev/null
	(cd "$BASE_DIR" && go build -o "$WORK/bin/lectern-base" ./cmd/lectern) || { git worktree remove --force "$BASE_DIR"; exit 1; }
	git worktree remove --force "$BASE_DIR"
	echo "   base: $(git rev-parse --short "$BASE_REF") ($BASE_REF); new: the working tree"
	BINS=(base new)
fi
"$WORK/bin/gen" -out "$WORK/files" | sed 's/^/   /'

# kb NAME PID: a field of /proc/PID/status in kB, without forking.
kb() {
	local k v rest
	while read -r k v rest; do
		if [[ $k == "$1:" ]]; then
			echo "$v"
			return
		fi
	done <"/proc/$2/status"
}

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

ROWS=()
# measure BIN SHAPE TENANTS: one fresh server, one upload per tenant.
measure() {
	local bin=$1 shape=$2 n=$3
	local dir="$WORK/run/$bin-$shape-$n"
	mkdir -p "$dir"
	DATA_DIR="$dir/default/data" UPLOADS_DIR="$dir/default/uploads" TENANT_DB_PATH="$dir/system/tenants.sqlite3" \
		TENANT_ADMIN_KEY="$KEY" LOG_LEVEL=warn "$WORK/bin/lectern-$bin" serve --addr 127.0.0.1:0 >"$dir/server.out" 2>"$dir/server.err" &
	SERVER_PID=$!
	local addr
	addr=$(wait_addr "$dir/server.out")
	local t
	for t in t1 t2 t3; do
		mkdir -p "$dir/$t/data" "$dir/$t/uploads"
		curl -fsS -o /dev/null -X PUT -H "X-Admin-Key: $KEY" "http://$addr/admin/tenants/$t" \
			-d "{\"data_dir\":\"$dir/$t/data\",\"uploads_dir\":\"$dir/$t/uploads\"}"
		curl -fsS -o /dev/null "http://$addr/t/$t/exams"
	done
	sleep 1
	local idle
	idle=$(kb VmRSS "$SERVER_PID")
	echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true # VmHWM := VmRSS
	(
		while [[ -e /proc/$SERVER_PID ]]; do
			kb VmRSS "$SERVER_PID" || true
			sleep 0.02
		done
	) >"$dir/rss" 2>/dev/null &
	SAMPLER_PID=$!

	local start=$EPOCHREALTIME start_s=$SECONDS i p posts=()
	for ((i = 1; i <= n; i++)); do
		curl -fsS -o "$dir/start$i.json" -F "exam_id=BIG$i" -F "score_files=@$WORK/files/$shape" \
			"http://$addr/t/t$i/exam/upload/start" &
		posts+=($!)
	done
	for p in "${posts[@]}"; do wait "$p"; done
	local outcome=() st
	for ((i = 1; i <= n; i++)); do
		local id
		id=$(jq -r .job_id "$dir/start$i.json")
		while :; do
			curl -fsS -o "$dir/status$i.json" "http://$addr/t/t$i/exam/upload/status?job_id=$id"
			st=$(jq -r .status "$dir/status$i.json")
			[[ $st == failed || $st == done ]] && break
			if ((SECONDS - start_s > TIMEOUT)); then
				st=timeout
				break
			fi
			sleep 0.05
		done
		if [[ $st == failed ]]; then
			st="failed: $(jq -r .error "$dir/status$i.json")"
		fi
		outcome+=("$st")
	done
	local wall
	wall=$(echo "$EPOCHREALTIME - $start" | bc)
	sleep 0.1
	local hwm
	hwm=$(kb VmHWM "$SERVER_PID")
	kill "$SAMPLER_PID" 2>/dev/null || true
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	local peak
	peak=$(sort -n "$dir/rss" | tail -1)
	local what
	what=$(printf '%s\n' "${outcome[@]}" | sort | uniq -c | sed 's/^ *//' | paste -sd ';')
	ROWS+=("$(printf '| %s | %s | %d | %s | %.1f | %.0f | %.0f | %.0f |' "$bin" "$shape" "$n" "$what" "$wall" \
		"$(echo "($peak - $idle) / 1024" | bc -l)" "$(echo "($hwm - $idle) / 1024" | bc -l)" "$(echo "$idle / 1024" | bc -l)")")
	echo "   ${ROWS[-1]}"
	rm -rf "$dir"
}

echo "== measuring (binary | shape | tenants | outcome | wall s | peak VmRSS above idle MB | VmHWM above idle MB | idle MB)"
for shape in $SHAPES; do
	for bin in "${BINS[@]}"; do
		measure "$bin" "$shape" 1
		measure "$bin" "$shape" 3
	done
done

echo
echo "| binary | shape | tenants | outcome | wall (s) | peak VmRSS above idle (MB) | VmHWM above idle (MB) | idle VmRSS (MB) |"
echo "|---|---|---:|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
