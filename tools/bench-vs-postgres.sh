#!/usr/bin/env bash
# The same credit workload against the seeds' PostgreSQL design and against
# ledgerd, in one run on this machine, with every change durable; prints a
# table with ratios (and writes it to bench-vs-postgres.md).
#
#   bash tools/setup.sh bench            # installs what is missing, builds, runs this
#   bash tools/bench-vs-postgres.sh [--seconds N] [--rounds N] [--out FILE] [--transport tcp|unix]
#       [--client-threads N]
#
# Workload (issue 6): 10,000 users with a starting balance; 80% usage of cost
# 1-10 with a small metadata object, 20% top-ups of 1000.
#   PostgreSQL 15 (Debian's), started here in a temporary directory on
#   loopback, synchronous_commit=on, fsync on: the seeds' tables
#   (tools/pg/schema.sql) and the row-lock transaction (SELECT ... FOR UPDATE,
#   UPDATE the balance, INSERT the transaction) as one statement, driven by
#   pgbench at 1, 16 and 64 clients.
#   ledgerd, --sync full: single JSON commands at 1, 16 and 64 connections,
#   JSON batches of 1000, Cap'n Proto batches of 1000 (with compact
#   results), each at 4 and 8 connections (ledger-loadgen).
# For each: throughput, p50/p99 latency, the server's CPU (cores busy on
# average, and CPU time per event) and peak memory (PSS, all of the server's
# processes). --rounds N repeats both systems' runs N times, alternating
# them, and reports medians and the range of the ratios: this shared
# machine's speed drifts by tens of percent between minutes. Beside them:
# the data disk's fsyncs/s (pg_test_fsync), the engine's in-process rate
# with sync off (bench_engine), and loopback HTTP's ceiling: the same
# ledger-loadgen runs against bench_http_ceiling, a server that answers each
# request with a canned answer and does nothing else.
# --transport unix runs every client of both systems over Unix-domain
# sockets instead of loopback TCP (pgbench through PostgreSQL's socket
# directory, ledger-loadgen to ledgerd --listen unix:PATH), for clients on
# the same machine; tcp, the default, is the issue's loopback.
# --client-threads N gives both clients N threads (pgbench -j N,
# ledger-loadgen --threads N); 1, the default, is pgbench's own default.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=10
ROUNDS=1
OUT=bench-vs-postgres.md
TRANSPORT=tcp
CLIENT_THREADS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --transport) TRANSPORT=$2; shift 2 ;;
    --client-threads) CLIENT_THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ "$TRANSPORT" = tcp ] || [ "$TRANSPORT" = unix ] || { echo "--transport is tcp or unix" >&2; exit 2; }
[[ "$CLIENT_THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "--client-threads is a number, 1 or more" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for f in "$PGBIN/initdb" "$PGBIN/pgbench" build/ledgerd build/ledger-loadgen build/bench_http_ceiling; do
  [ -x "$f" ] || { echo "missing $f (run: bash tools/setup.sh bench)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/ledger-bench-XXXXXX)
chmod 755 "$WORK"
AS=()
[ "$(id -u)" -eq 0 ] && AS=(runuser -u postgres --)
PGPORT=$((20000 + RANDOM % 20000))
LPORT=$((40000 + RANDOM % 20000))
CPORT=$((LPORT + 1))
# Where the clients connect: pgbench's and psql's -h, ledger-loadgen's --url
# for ledgerd and for the ceiling server, and curl's way to each.
if [ "$TRANSPORT" = unix ]; then
  PGHOST=$WORK/pg
  LEDGERD_LISTEN=unix:$WORK/ledgerd.sock LEDGERD_URL=unix:$WORK/ledgerd.sock
  CEILING_LISTEN=unix:$WORK/ceiling.sock CEILING_URL=unix:$WORK/ceiling.sock
  CURL_LEDGERD=(--unix-socket "$WORK/ledgerd.sock") LEDGERD_BASE=http://localhost
  CURL_CEILING=(--unix-socket "$WORK/ceiling.sock") CEILING_BASE=http://localhost
else
  PGHOST=127.0.0.1
  LEDGERD_LISTEN=127.0.0.1:$LPORT LEDGERD_URL=http://127.0.0.1:$LPORT
  CEILING_LISTEN=127.0.0.1:$CPORT CEILING_URL=http://127.0.0.1:$CPORT
  CURL_LEDGERD=() LEDGERD_BASE=http://127.0.0.1:$LPORT
  CURL_CEILING=() CEILING_BASE=http://127.0.0.1:$CPORT
fi
LEDGERD_PID=
CEILING_PID=
cleanup() {
  # (A killed server's wait returns 143; under set -e that would become the
  # script's exit status after a good run.)
  [ -n "$LEDGERD_PID" ] && { kill "$LEDGERD_PID" && wait "$LEDGERD_PID"; } 2>/dev/null || true
  [ -n "$CEILING_PID" ] && { kill "$CEILING_PID" && wait "$CEILING_PID"; } 2>/dev/null || true
  [ -f "$WORK/pg/postmaster.pid" ] && "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
TICK=$(getconf CLK_TCK)
log() { printf '== %s\n' "$*" >&2; }
source tools/loadgen-summary.sh
# awk functions for the medians of space-separated lists, shared by the
# table and the load generator's CPU line.
AWK_MEDIAN='
    # The numbers of a space-separated list into v[1..n], ascending; n.
    function sorted(list, v,   n, i, j, t) {
      n = split(list, v, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return n
    }
    function median(list,   v, n) {
      n = sorted(list, v)
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
'

# --- sampling a server's CPU and memory while a load runs ---
# sample_start PIDS_FUNCTION: samples every 0.25 s until sample_stop, which
# sets cpu (cores busy on average) and mem (peak PSS in MB).
sample_start() {
  local fn=$1
  rm -f "$WORK/stop"
  (
    set +eu
    declare -A base=() last=()
    for pid in $($fn); do
      read -r -a st 2>/dev/null < "/proc/$pid/stat" && base[$pid]=$((st[13] + st[14]))
    done
    peak=0
    t0=$(date +%s.%N)
    while [ ! -f "$WORK/stop" ] && kill -0 $$ 2>/dev/null; do
      pss=0
      for pid in $($fn); do
        read -r -a st 2>/dev/null < "/proc/$pid/stat" || continue
        last[$pid]=$((st[13] + st[14]))
        p=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        pss=$((pss + ${p:-0}))
      done
      [ "$pss" -gt "$peak" ] && peak=$pss
      sleep 0.25
    done
    ticks=0
    for pid in "${!last[@]}"; do ticks=$((ticks + last[$pid] - ${base[$pid]:-0})); done
    t1=$(date +%s.%N)
    awk -v t="$ticks" -v hz="$TICK" -v a="$t0" -v b="$t1" -v p="$peak" \
      'BEGIN { printf "%.2f %.0f\n", t / hz / (b - a), p / 1024 }' > "$WORK/sample"
  ) &
  SAMPLER=$!
}
sample_stop() {  # sets cpu and mem
  touch "$WORK/stop"
  wait "$SAMPLER"
  read -r cpu mem < "$WORK/sample"
}

ROWS=()  # "round|name|system|clients|rate|p50|p99|cpu|mem"
row() {  # round name system clients rate p50 p99 cpu mem; also logged, for each round's spread
  ROWS+=("$1|$2|$3|$4|$5|$6|$7|$8|$9")
  log "   $3, $2, $4 clients: $5/s, p50 $6 ms, p99 $7 ms, CPU $8 cores, $9 MB"
}

# --- the machine ---
log "disk: fsyncs/s (pg_test_fsync)"
FSYNCS=$("$PGBIN/pg_test_fsync" -s 2 -f "$WORK/fsync.test" 2>/dev/null |
  awk '/fdatasync/ && /ops\/sec/ { print int($2); exit }')
log "engine in process, sync off (bench_engine, 16 threads x 100 commands per call)"
NOSYNC=$(build/bench_engine --benchmark_filter='BM_Ingest/sync:0/per_call:100/real_time/threads:16' \
  --benchmark_format=json 2>/dev/null | awk -F': ' '/"items_per_second"/ { v = $2 } END { printf "%d", v }')

# --- PostgreSQL ---
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres)
pg_start() {
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg/log" \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on -c max_connections=200" \
    start >/dev/null
}
log "PostgreSQL: initdb, start on 127.0.0.1:$PGPORT and $WORK/pg (synchronous_commit=on); clients over $TRANSPORT"
mkdir -p "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK/pg"
"${AS[@]}" "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
pg_start
"${PSQL[@]}" -f tools/pg/schema.sql
"${PSQL[@]}" -c "INSERT INTO \"User\" (id, email) SELECT 'u' || i, 'u' || i || '@x.io' FROM generate_series(1, 10000) i;
  INSERT INTO \"UserBalance\" (\"userId\", balance) SELECT 'u' || i, 1000000 FROM generate_series(1, 10000) i;" \
  -c "VACUUM ANALYZE"
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null
# One statement per change: lock the balance row, move it, record the
# transaction with its running balance (80% usage of 1-10, 20% top-up of 1000).
cat > "$WORK/credit.pgbench" <<'EOF2'
\set uid random(1, 10000)
\set r random(1, 100)
\set cost random(1, 10)
WITH locked AS (SELECT balance FROM "UserBalance" WHERE "userId" = 'u' || :uid FOR UPDATE), moved AS (UPDATE "UserBalance" SET balance = CASE WHEN :r::int <= 80 THEN balance - :cost::int ELSE LEAST(balance::bigint + 1000, 2147483647)::int END, "updatedAt" = now() WHERE "userId" = 'u' || :uid AND (:r::int > 80 OR (SELECT balance FROM locked) >= :cost::int) RETURNING balance) INSERT INTO "CreditTransaction" ("transactionKey", "userId", amount, type, "runningBalance", metadata) SELECT gen_random_uuid()::text, 'u' || :uid, CASE WHEN :r::int <= 80 THEN -(:cost::int) ELSE 1000 END, (CASE WHEN :r::int <= 80 THEN 'USAGE' ELSE 'TOP_UP' END)::"CreditTransactionType", balance, (CASE WHEN :r::int <= 80 THEN '{"graph_exec_id": "g-1", "node_id": "n"}' ELSE '{}' END)::jsonb FROM moved;
EOF2
pg_pids() {
  local pm
  pm=$(head -1 "$WORK/pg/postmaster.pid" 2>/dev/null) || return 0
  echo "$pm" $(pgrep -P "$pm")
}
pg_round() {  # round: pgbench at 1, 16 and 64 clients
  local c out tps p50 p99
  log "PostgreSQL: round $1 of $ROUNDS, start (clients over $TRANSPORT)"
  pg_start
  for c in 1 16 64; do
    log "PostgreSQL: pgbench, $c clients, ${SECONDS_PER_RUN} s"
    rm -f "$WORK"/pgbench_log*
    sample_start pg_pids
    out=$(cd "$WORK" && "$PGBIN/pgbench" -n -h "$PGHOST" -p "$PGPORT" -U postgres -c "$c" -j "$(( CLIENT_THREADS < c ? CLIENT_THREADS : c ))" \
      -T "$SECONDS_PER_RUN" -M prepared -f credit.pgbench -l --log-prefix=pgbench_log postgres 2>&1) ||
      { sample_stop; echo "pgbench failed: $out" >&2; exit 1; }
    sample_stop
    tps=$(echo "$out" | awk '/^tps = / { printf "%d", $3; exit }')
    read -r p50 p99 < <(cat "$WORK"/pgbench_log* | awk '{ print $3 }' | sort -n |
      awk '{ v[NR] = $1 } END { printf "%.2f %.2f\n", v[int(NR * 0.50) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }')
    row "$1" "row-lock tx, pgbench" PostgreSQL "$c" "$tps" "$p50" "$p99" "$cpu" "$mem"
  done
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null
}

# --- ledgerd ---
ledgerd_pids() { echo "$LEDGERD_PID"; }
setup=()  # the first run gives every user a starting balance
loadgen() {  # round name clients mode batch [results]
  local round=$1 name=$2 c=$3 mode=$4 batch=$5 results=${6:-full} out rate p50 p99
  log "ledgerd: $name, $c connections, ${SECONDS_PER_RUN} s"
  sample_start ledgerd_pids
  out=$(build/ledger-loadgen --url "$LEDGERD_URL" --mode "$mode" --batch "$batch" \
    --results "$results" --connections "$c" --threads "$CLIENT_THREADS" \
    --seconds "$SECONDS_PER_RUN" "${setup[@]}") ||
    { sample_stop; echo "ledger-loadgen failed: $out" >&2; exit 1; }
  sample_stop
  setup=(--no-setup)
  rate=$(loadgen_rate <<< "$out")
  p50=$(loadgen_latency p50 <<< "$out")
  p99=$(loadgen_latency p99 <<< "$out")
  row "$round" "$name" ledgerd "$c" "$rate" "$p50" "$p99" "$cpu" "$mem"
  client_us=$(loadgen_client_us <<< "$out")
  CLIENT+=("$name at $c|${client_us:-0}")
  log "   the load generator's own CPU: ${client_us:-?} us per event"
}
CLIENT=()  # "workload at clients|the load generator's CPU us per event", each run
# The medians of CLIENT, in the order first run: "single JSON commands at 1:
# 55.1 µs, ...".
client_medians() {
  printf '%s\n' "${CLIENT[@]}" | awk -F'|' "$AWK_MEDIAN"'
    { if (!($1 in v)) order[++n] = $1; v[$1] = v[$1] " " $2 }
    END { for (i = 1; i <= n; i++) printf "%s%s: %.2f µs", (i > 1 ? ", " : ""), order[i], median(v[order[i]]) }'
}
ledgerd_round() {  # round: the same data directory every round (a restart recovers it)
  log "ledgerd: round $1 of $ROUNDS, start on $LEDGERD_LISTEN (--sync full)"
  build/ledgerd --data "$WORK/ledger" --listen "$LEDGERD_LISTEN" --no-access-log \
    >> "$WORK/ledgerd.log" 2>&1 &
  LEDGERD_PID=$!
  for _ in $(seq 100); do
    curl -sf "${CURL_LEDGERD[@]}" "$LEDGERD_BASE/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  loadgen "$1" "single JSON commands" 1 single 1
  loadgen "$1" "single JSON commands" 16 single 1
  loadgen "$1" "single JSON commands" 64 single 1
  # Batches at 4 and at 8 connections: with 4 batches in flight the server
  # waits on the group commits' syncs with a core to spare (latency-bound);
  # 8 keep it busy while the syncs run.
  loadgen "$1" "JSON batches of 1000" 4 json-batch 1000
  loadgen "$1" "JSON batches of 1000" 8 json-batch 1000
  # Cap'n Proto clients take compact results (POST /v1/events?results=compact):
  # each result's fields, and its JSON only where they do not say it all.
  loadgen "$1" "Cap'n Proto batches of 1000" 4 capnp-batch 1000 compact
  loadgen "$1" "Cap'n Proto batches of 1000" 8 capnp-batch 1000 compact
  kill "$LEDGERD_PID" && wait "$LEDGERD_PID" 2>/dev/null || true
  LEDGERD_PID=
}

# Each system starts on a quiet disk: the other's last writes (PostgreSQL's
# shutdown checkpoint, ledgerd's final flush and snapshot) are written back
# first, so they do not land in the next system's 1-client latencies.
settle() {
  sync
  sleep 2
}
# Rounds alternate the two systems, so both see the same hours of a shared
# machine whose speed drifts between minutes.
for r in $(seq "$ROUNDS"); do
  settle
  pg_round "$r"
  settle
  ledgerd_round "$r"
done

# --- loopback HTTP's ceiling: the same load against a server doing nothing ---
build/bench_http_ceiling --listen "$CEILING_LISTEN" --batch 1000 > "$WORK/ceiling.log" 2>&1 &
CEILING_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null -X POST -d '{}' "${CURL_CEILING[@]}" "$CEILING_BASE/v1/events" 2>/dev/null &&
    break
  sleep 0.1
done
ceiling() {  # clients mode: prints events/s
  log "bench_http_ceiling: $2, $1 connections, ${SECONDS_PER_RUN} s"
  build/ledger-loadgen --url "$CEILING_URL" --no-setup --mode "$2" --batch 1000 \
    --connections "$1" --threads "$CLIENT_THREADS" --seconds "$SECONDS_PER_RUN" | loadgen_rate
}
CEIL_SINGLE=$(ceiling 64 single)
CEIL_JSON=$(ceiling 4 json-batch)
CEIL_CAPNP=$(ceiling 4 capnp-batch)

# --- the table ---
# One row per workload: the median over the rounds of each column; CPU per
# event is the server's CPU time over the events it acknowledged. The ratio
# is taken within each round (ledgerd against the PostgreSQL runs of the
# same round: at the same clients for single commands, PostgreSQL's best for
# batches), its median shown, and its range when there are several rounds.
table() {
  awk -F'|' "$AWK_MEDIAN"'
    {
      k = $2 "|" $3 "|" $4
      if (!(k in seen)) { seen[k] = 1; order[++rows] = k }
      rate[k] = rate[k] " " $5; p50[k] = p50[k] " " $6; p99[k] = p99[k] " " $7
      cpu[k] = cpu[k] " " $8; mem[k] = mem[k] " " $9
      if ($5 > 0) us[k] = us[k] " " sprintf("%.1f", $8 * 1e6 / $5)
      r[NR] = $1; name[NR] = $2; sys[NR] = $3; c[NR] = $4; ev[NR] = $5
      if ($3 == "PostgreSQL") { pg[$1 "|" $4] = $5; if ($5 > best[$1]) best[$1] = $5 }
    }
    END {
      for (i = 1; i <= NR; i++) {
        if (sys[i] != "ledgerd") continue
        k = name[i] "|" sys[i] "|" c[i]
        if (name[i] == "single JSON commands") base = pg[r[i] "|" c[i]]; else base = best[r[i]]
        if (base > 0) ratio[k] = ratio[k] " " sprintf("%.1f", ev[i] / base)
      }
      for (i = 1; i <= rows; i++) {
        k = order[i]; split(k, f, "|")
        x = "—"
        if (k in ratio) {
          if (f[1] == "single JSON commands") x = sprintf("%.1fx pgbench at %d client%s", median(ratio[k]), f[3], f[3] == 1 ? "" : "s")
          else x = sprintf("%.0fx PostgreSQL'"'"'s best", median(ratio[k]))
          if ((n = sorted(ratio[k], t)) > 1) x = x sprintf(" (%s–%sx)", t[1], t[n])
        }
        printf "| %s | %s | %s | %d | %.2f | %.2f | %.2f | %.1f | %.0f | %s |\n", f[1], f[2], f[3],
          median(rate[k]), median(p50[k]), median(p99[k]), median(cpu[k]), median(us[k]), median(mem[k]), x
      }
    }'
}
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC on $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),"
  echo "$(. /etc/os-release && echo "$PRETTY_NAME"), $("$PGBIN/postgres" --version), ${SECONDS_PER_RUN} s per run,"
  echo "$ROUNDS round(s) alternating the two systems (each figure the median over the rounds);"
  echo "every change durable (fsync per commit / per group commit). Clients run on the same cores,"
  threads="one client thread each"
  [ "$CLIENT_THREADS" -gt 1 ] && threads="$CLIENT_THREADS client threads each (pgbench -j, ledger-loadgen --threads)"
  if [ "$TRANSPORT" = unix ]; then
    echo "all of them (pgbench and ledger-loadgen alike) over Unix-domain sockets, $threads."
  else
    echo "all of them over loopback TCP, $threads."
  fi
  echo
  echo "| workload | system | clients | events/s | p50 ms | p99 ms | server CPU (cores) | server CPU µs per event | server peak memory (MB) | vs PostgreSQL |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}" | table
  echo
  echo "The machine: the data disk does ${FSYNCS:-?} fsyncs/s (pg_test_fsync, fdatasync of 8 kB);"
  echo "the engine in process with sync off: ${NOSYNC:-?} events/s (bench_engine, 16 threads x 100 per call);"
  echo "HTTP over $TRANSPORT with a server that answers and does nothing else (bench_http_ceiling), same load:"
  echo "${CEIL_SINGLE:-?} single requests/s at 64 connections, ${CEIL_JSON:-?} events/s in JSON batches of 1000,"
  echo "${CEIL_CAPNP:-?} in Cap'n Proto batches of 1000."
  echo "ledger-loadgen's own CPU per event, on the same cores (medians): $(client_medians)."
  if [ "$ROUNDS" -gt 1 ]; then
    echo
    echo "Round by round, events/s (p99 ms):"
    printf '%s\n' "${ROWS[@]}" | awk -F'|' '
      { k = $2 ", " $3 " at " $4; sep = " / "; if (!(k in v)) { order[++n] = k; sep = "" }
        v[k] = v[k] sep sprintf("%d (%.2f)", $5, $7) }
      END { for (i = 1; i <= n; i++) printf "- %s: %s\n", order[i], v[order[i]] }'
  fi
} | tee "$OUT"
