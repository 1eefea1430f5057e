#!/usr/bin/env bash
# Alternating rounds of ledgerd builds under the same load: events/s, p99,
# and the server's CPU time per event (user + kernel, from /proc), in all
# and by thread. Where tools/instructions-per-event.sh counts user-space
# instructions only, this also sees what a change saves or costs in the
# kernel (page-cache copies, fdatasync, TCP) and in RocksDB's background
# threads.
#
#   bash tools/cpu-per-event.sh [--mode capnp-batch] [--seconds 6] [--rounds 3]
#       [--windows 1] [--threads] [--transport tcp|unix] BINARY [BINARY ...]
#       [-- LEDGERD_FLAGS...]
#
# Each round runs every binary in turn on a fresh data directory (in
# $TMPDIR): a 2 s warm-up that also gives every user a starting balance,
# then the measured run. --threads adds each thread's share. --windows N
# measures N runs of --seconds one after another on the same server and data
# directory, one line each with the directory's size: how the costs grow
# with the data (sustained load). The load is ledger-loadgen's (from
# build/): single commands at 64 connections, or batches of 1,000 over 4
# connections (CONNS=N in the environment for N; RESULTS=compact for
# compact Cap'n Proto results), over loopback TCP or
# (--transport unix) a Unix-domain socket.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=capnp-batch SECS=6 ROUNDS=3 WINDOWS=1 THREADS=0 TRANSPORT=tcp
BINS=() FLAGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --windows) WINDOWS=$2; shift 2 ;;
    --threads) THREADS=1; shift ;;
    --transport) TRANSPORT=$2; shift 2 ;;
    --) shift; FLAGS=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) BINS+=("$1"); shift ;;
  esac
done
[ ${#BINS[@]} -gt 0 ] || { echo "name at least one ledgerd binary (see --help)" >&2; exit 2; }
LOADGEN=build/ledger-loadgen
[ -x "$LOADGEN" ] || { echo "missing $LOADGEN (build first)" >&2; exit 2; }
case "$MODE" in
  single) LOAD=(--mode single --connections 64) ;;
  json-batch) LOAD=(--mode "$MODE" --batch 1000 --connections ${CONNS:-4}) ;;
  capnp-batch)
    LOAD=(--mode "$MODE" --batch 1000 --connections ${CONNS:-4} --results ${RESULTS:-full}) ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac

WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && { kill "$PID" && wait "$PID"; } 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
TICK=$(getconf CLK_TCK)
source tools/loadgen-summary.sh

# Each thread name's CPU ticks (user + system) in process $1.
thread_ticks() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(tr ' ' '_' < "$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"
  done | awk '{ a[$1] += $2 } END { for (k in a) print k, a[k] }' | sort
}

for round in $(seq "$ROUNDS"); do
  for bin in "${BINS[@]}"; do
    rm -rf "$WORK/data"
    port=$((30000 + RANDOM % 20000))
    listen=127.0.0.1:$port url=http://127.0.0.1:$port
    [ "$TRANSPORT" = unix ] && listen=unix:$WORK/ledgerd.sock url=unix:$WORK/ledgerd.sock
    "$bin" --data "$WORK/data" --listen "$listen" --no-access-log "${FLAGS[@]}" \
      > "$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do grep -q listening "$WORK/server.log" && break; sleep 0.1; done
    "$LOADGEN" --url "$url" "${LOAD[@]}" --seconds 2 > /dev/null
    for window in $(seq "$WINDOWS"); do
      thread_ticks "$PID" > "$WORK/before"
      out=$("$LOADGEN" --url "$url" "${LOAD[@]}" --seconds "$SECS" --no-setup)
      thread_ticks "$PID" > "$WORK/after"
      events=$(loadgen_events <<< "$out")
      rate=$(loadgen_rate <<< "$out")
      p99=$(loadgen_latency p99 <<< "$out")
      # With windows: which one, and the data directory's size after it.
      where="" data=""
      if [ "$WINDOWS" -gt 1 ]; then
        where=" window $window" data=", data $(du -sm "$WORK/data" | cut -f1) MB"
      fi
      head="round $round $bin$where: $rate events/s, p99 $p99 ms$data"
      join "$WORK/before" "$WORK/after" |
        awk -v ev="$events" -v tick="$TICK" -v show="$THREADS" -v head="$head" '
          { us = ($3 - $2) * 1e6 / tick / ev; total += us; if (us > 0.0005) line[$1] = us }
          END {
            printf "%s, server CPU %.2f us/event\n", head, total
            if (show) for (k in line) printf "  %-16s %.3f us/event\n", k, line[k] | "sort"
          }'
    done
    kill "$PID" && wait "$PID" 2>/dev/null || true
    PID=
  done
done
