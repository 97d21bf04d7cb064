#!/usr/bin/env bash
# Slow request bodies (see docs/benchmarks.md, "Slow bodies"): N clients
# each send an upload one byte every GAP to /t/t1/upload of a Lectern on
# 127.0.0.1; bench/slowbody samples the server's descriptors and the partial
# upload folders every 5 s for DURATION.
#
# Knobs: N=300 GAP=3s DURATION=45s; BASE=<git revision> also runs the same
# test against that revision first (built in a temporary worktree), for a
# before/after in one run. Extra server environment (BODY_IDLE_TIMEOUT_SEC,
# BODY_MIN_RATE_KB) passes through.
set -euo pipefail
# The load comes from one address: measure the server, not its per-client limit.
export RATE_LIMIT_RPM=${RATE_LIMIT_RPM:-0}
cd "$(dirname "$0")/.."
N=${N:-300}
GAP=${GAP:-3s}
DURATION=${DURATION:-45s}
KEY=bench-admin-key
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lectern-slowbody.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	[[ -n ${BASE:-} ]] && git worktree remove --force "$WORK/base" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 4096

mkdir -p "$WORK/bin"
go build -o "$WORK/bin/lectern" ./cmd/lectern
go build -o "$WORK/bin/slowbody" ./bench/slowbody
if [[ -n ${BASE:-} ]]; then
	git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
	(cd "$WORK/base" && go build -o "$WORK/bin/lectern-base" ./cmd/lectern)
fi

run() { # dir-name label binary port
	local label=$2 bin=$3 port=$4 dir="$WORK/$1"
	mkdir -p "$dir"
	DATA_DIR="$dir/data" UPLOADS_DIR="$dir/uploads" TENANT_ADMIN_KEY=$KEY LOG_LEVEL=error \
		"$bin" serve --addr "127.0.0.1:$port" >"$dir/out.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
	curl -sf -X PUT -H "X-Admin-Key: $KEY" "127.0.0.1:$port/admin/tenants/t1" \
		-d "{\"data_dir\":\"$dir/t1/data\",\"uploads_dir\":\"$dir/t1/uploads\"}" >/dev/null
	echo "== $label: $N clients, one byte every $GAP, for $DURATION (idle server: $(ls /proc/$pid/fd | wc -l) fds)"
	"$WORK/bin/slowbody" -addr "127.0.0.1:$port" -path /t/t1/upload -pid "$pid" -uploads "$dir/t1/uploads" \
		-n "$N" -gap "$GAP" -duration "$DURATION"
	kill "$pid"; wait "$pid" 2>/dev/null || true
}
if [[ -n ${BASE:-} ]]; then run base "base ($BASE)" "$WORK/bin/lectern-base" 18101; fi
run new "lectern (BODY_IDLE_TIMEOUT_SEC=${BODY_IDLE_TIMEOUT_SEC:-10}, BODY_MIN_RATE_KB=${BODY_MIN_RATE_KB:-16})" "$WORK/bin/lectern" 18102
