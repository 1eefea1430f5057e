#!/usr/bin/env bash
# Instructions per event, by thread, of ledgerd under a load: a measure of
# the server's own work that does not move with the machine's speed (this
# 2-core machine's throughput moves ±15-30% between runs of one binary, so
# a change worth a few percent shows here and not in events/s).
#
#   bash tools/instructions-per-event.sh [--binary build/ledgerd] [--mode single]
#       [--batch 1000] [--connections 8] [--rate 400] [--seconds 20] [--top N]
#
# It runs ledgerd under valgrind's callgrind (about 50x slower, hence the
# paced load) on a fresh data directory, warms it up, counts only the
# measured run, and prints each busy thread's instructions per event
# acknowledged, named by what the thread runs; --top N adds each thread's N
# costliest functions, each with its callees (the thread's own loop left out). User space only: the kernel's share
# (TCP, fdatasync) is not in these counts. The writer's count moves with how
# commands happen to group (per-group work is shared by fewer or more
# events), once by 20% in a dozen runs: run twice before believing it.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/loadgen-summary.sh

BIN=build/ledgerd MODE=single BATCH=1000 CONNS=8 RATE=400 SECS=20 TOP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BIN=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for f in valgrind callgrind_control callgrind_annotate; do
  command -v "$f" >/dev/null || { echo "missing $f (apt-get install valgrind)" >&2; exit 2; }
done
[ -x "$BIN" ] && [ -x build/ledger-loadgen ] || { echo "build first (bash tools/setup.sh test)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/ledger-ipe-XXXXXX)
PORT=$((40000 + RANDOM % 20000))
VG=
cleanup() {
  [ -n "$VG" ] && kill -9 "$VG" 2>/dev/null && wait "$VG" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/cg.out" \
  "$BIN" --no-access-log --data "$WORK/data" --listen "127.0.0.1:$PORT" > "$WORK/log" 2>&1 &
VG=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
LOAD=(--url "http://127.0.0.1:$PORT" --users 1000 --mode "$MODE" --batch "$BATCH"
  --connections "$CONNS")
# Warm-up (and every user's starting balance), not counted.
build/ledger-loadgen "${LOAD[@]}" --seconds 2 --rate "$RATE" > /dev/null
callgrind_control -z "$VG" > /dev/null 2>&1
OUT=$(build/ledger-loadgen "${LOAD[@]}" --no-setup --seconds "$SECS" --rate "$RATE")
callgrind_control -d "$VG" > /dev/null 2>&1
echo "$OUT" | grep -E "^(mode|requests|events ok)"
EVENTS=$(loadgen_events <<< "$OUT")
[ "${EVENTS:-0}" -gt 0 ] || { echo "no events acknowledged" >&2; exit 1; }

name_of() {  # a dump's thread, by the function it runs
  local top=$1
  case "$top" in
    *Writer::WriteLoop*) echo "ledger-write" ;;
    *Writer::SyncLoop*) echo "ledger-sync" ;;
    *Writer::Run*) echo "ledger-writer" ;;
    *scheduler::run*) echo "ledger-http" ;;
    *WalPool*) echo "ledger-walfill" ;;
    *BGWork*|*ThreadPoolImpl*) echo "rocksdb" ;;
    *) echo "other" ;;
  esac
}
total=0
for f in "$WORK"/cg.out*-*; do
  ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
  [ "${ir:-0}" -gt $((EVENTS * 10)) ] || continue  # idle threads
  report=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null)
  top=$(echo "$report" | grep -E "Writer::(WriteLoop|SyncLoop|Run)\(|scheduler::run|WalPool|BGWork|ThreadPoolImpl" | head -1)
  printf '%-14s %8d instructions/event\n' "$(name_of "$top")" $((ir / EVENTS))
  total=$((total + ir))
  if [ "$TOP" -gt 0 ]; then
    # awk reads its whole input, so no writer dies of SIGPIPE (which,
    # under pipefail, would end the script after the first thread).
    echo "$report" | grep -E '^ *[0-9,]+ \(' |
      grep -v "PROGRAM TOTALS\|clone\|start_thread\|_State_impl\|0x0000\|(100.0%)" |
      awk -v n="$TOP" 'NR <= n { print "    " substr($0, 1, 150) }'
  fi
done
printf '%-14s %8d instructions/event\n' "all" $((total / EVENTS))
