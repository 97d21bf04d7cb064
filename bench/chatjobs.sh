#!/usr/bin/env bash
# chatjobs.sh: chat jobs per second end to end (POST /chat/start until done,
# against an instant fake LLM over HTTP: BenchmarkChatJobs in
# internal/server), this checkout against BASE, interleaved ROUNDS times so
# the machine's drift hits both alike; prints each run and the per-round
# ratio HEAD/BASE (HEAD: the last commit, not the working tree). Also the time to the first streamed token added by
# Lectern (BenchmarkFirstToken in internal/chat), the same way.
#
#   BASE=8bb8fe4 ROUNDS=3 JOBS=400 bash bench/chatjobs.sh
set -euo pipefail
BASE=${BASE:?set BASE to the revision to compare with}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-400}
TURNS=${TURNS:-200}
ROOT=$(git rev-parse --show-toplevel)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Every run's files are kept until the end (removed with $WORK): deleting
# one run's thousands of files would tax the next run's file creations
# (ext4 without a journal skips inodes freed in the last minutes).
export LECTERN_BENCH_KEEP="$WORK/keep"
# Both from their commits (git archive), not the working tree.
build() { # rev dir
	mkdir -p "$2/src"
	git -C "$ROOT" archive "$1" | tar -x -C "$2/src"
	# The same harness for both: HEAD's benchmark files, test server and
	# fake LLM (test code only; the fake's Lean mode and LECTERN_BENCH_KEEP
	# came after b11f264).
	git -C "$ROOT" show HEAD:internal/server/chat_bench_test.go >"$2/src/internal/server/chat_bench_test.go"
	git -C "$ROOT" show HEAD:internal/server/server_test.go >"$2/src/internal/server/server_test.go" # newEnv, envRoot
	git -C "$ROOT" show HEAD:internal/chat/bench_test.go >"$2/src/internal/chat/bench_test.go"
	rm -rf "$2/src/internal/llm/llmtest"
	git -C "$ROOT" archive HEAD internal/llm/llmtest | tar -x -C "$2/src"
	(cd "$2/src" && go test -c -o "$2/server.test" ./internal/server/ && go test -c -o "$2/chat.test" ./internal/chat/)
}
build "$BASE" "$WORK/base"
build HEAD "$WORK/head"
metric() { awk -v m="$1" '{for (i = 1; i <= NF; i++) if ($i == m) print $(i-1)}'; }
echo "== chat jobs/s (a new student per job over 1 and 16 tenants, and 200 returning students over 16; $JOBS jobs per run), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	for t in 'tenants=1$' 'tenants=16$' 'students=200/tenants=16$'; do
		b=$(cd "$WORK" && "$WORK/base/server.test" -test.run '^$' -test.bench "BenchmarkChatJobs/$t" -test.benchtime "${JOBS}x" | metric jobs/s)
		h=$(cd "$WORK" && "$WORK/head/server.test" -test.run '^$' -test.bench "BenchmarkChatJobs/$t" -test.benchtime "${JOBS}x" | metric jobs/s)
		echo "round $r ${t%\$}: base $b jobs/s, head $h jobs/s, ratio $(awk -v a="$h" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
	done
done
echo "== first streamed token added (model delay 0; $TURNS turns per run), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	b=$(cd "$WORK" && "$WORK/base/chat.test" -test.run '^$' -test.bench 'BenchmarkFirstToken/model_delay=0s' -test.benchtime "${TURNS}x" | metric added-ms)
	h=$(cd "$WORK" && "$WORK/head/chat.test" -test.run '^$' -test.bench 'BenchmarkFirstToken/model_delay=0s' -test.benchtime "${TURNS}x" | metric added-ms)
	echo "round $r: base $b ms, head $h ms added (mean), ratio $(awk -v a="$h" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
done
echo "(load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
