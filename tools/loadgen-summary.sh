# Fields of ledger-loadgen's summary (its standard output), read from standard
# input; sourced by the measuring scripts so they read it one way:
#   events ok  461792 (76892/s), rejected 0, http errors 0
#   latency    p50 0.80 ms, p90 1.27 ms, p99 2.13 ms, max 11.59 ms
#   client cpu 5.12 us per event (user 0.40 s, system 2.71 s)
loadgen_events() { awk '/^events ok/ { print $3 }'; }                                   # acknowledged
loadgen_rate() { awk '/^events ok/ { gsub(/[(\/s),]/, "", $4); printf "%d", $4 }'; }    # events/s
loadgen_latency() {  # p50 | p90 | p99 | max, in ms
  awk -v want="$1" '/^latency/ { gsub(/,/, ""); for (i = 2; i < NF; i += 3) if ($i == want) print $(i + 1) }'
}
loadgen_client_us() { awk '/^client cpu/ { print $3 }'; }                             # its CPU per event
