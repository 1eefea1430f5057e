#!/usr/bin/env bash
# The two commands of a fresh machine (see README):
#   bash tools/setup.sh run    install what is missing, build, run ledgerd on 127.0.0.1:8080
#   bash tools/setup.sh test   install what is missing, build, run every test suite
#   bash tools/setup.sh bench  install what is missing, build, run tools/bench-vs-postgres.sh
# Extra arguments after `run` go to ledgerd (e.g. --data DIR, --listen HOST:PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build, the tests and the benchmarks use.
PACKAGES=(g++ meson ninja-build pkg-config capnproto libcapnp-dev librocksdb-dev
          libsimdjson-dev libxxhash-dev libboost-dev libgtest-dev libbenchmark-dev
          clang-format clang libclang-rt-14-dev curl postgresql-15 postgresql-client-15)

log() { printf '\n== %s\n' "$*"; }

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return
  fi
  log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# configure DIR [meson options...]: set up once, then apply the options.
configure() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@"
  else
    meson configure "$dir" "$@" >/dev/null
  fi
}

# build DIR [meson options...]: configure, then (re)build everything.
build() {
  configure "$@"
  ninja -C "$1"
}

werror=()
[ "${CI:-}" = "true" ] && werror=(-Dwerror=true)

case "${1:-}" in
  run)
    shift
    install_missing
    log "building (release)"
    build build -Dbuildtype=release "${werror[@]}"
    log "starting ledgerd (Ctrl-C stops it; it writes a snapshot on the way out)"
    exec ./build/ledgerd "$@"
    ;;
  bench)
    shift
    install_missing
    log "building (release)"
    build build -Dbuildtype=release "${werror[@]}"
    exec bash tools/bench-vs-postgres.sh "$@"
    ;;
  test)
    install_missing
    log "format check (.clang-format)"
    mapfile -t sources < <(git ls-files '*.cc' '*.h' 2>/dev/null || find . -name '*.cc' -o -name '*.h')
    if ! clang-format --dry-run --Werror "${sources[@]}"; then
      echo "clang-format: the files above are not formatted (run: clang-format -i FILE)"
      exit 1
    fi
    log "building (release)"
    build build -Dbuildtype=release "${werror[@]}"
    log "tests (release)"
    meson test -C build --print-errorlogs --num-processes 2
    log "building (address + undefined sanitizers)"
    # GCC 12 with ASan+UBSan instrumentation warns falsely (maybe-uninitialized)
    # inside Boost.Beast's parser where it is inlined into our code; only there.
    build build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
      -Dcpp_args=-Wno-maybe-uninitialized "${werror[@]}"
    log "tests (address + undefined sanitizers)"
    meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
    log "fuzzing (libFuzzer, ${FUZZ_SECONDS:-60} s per target)"
    fuzz_targets=(json_command capnp_batch log_record)
    # Only the fuzzers: the tools and benchmarks are built and tested above.
    (export CXX=clang++; configure build-fuzz -Dfuzz=true -Dtests=false -Dbuildtype=debugoptimized \
      -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link &&
      ninja -C build-fuzz "${fuzz_targets[@]/%/_fuzz}")
    for target in "${fuzz_targets[@]}"; do
      corpus=$(mktemp -d)
      cp fuzz/corpus/${target%%_*}/* "$corpus/"
      status=0
      ./build-fuzz/${target}_fuzz -max_total_time="${FUZZ_SECONDS:-60}" -max_len=8192 \
        -print_final_stats=1 "$corpus" > "$corpus.log" 2>&1 || status=$?
      grep -E "^Done|ERROR|SUMMARY" "$corpus.log" || tail -20 "$corpus.log"
      rm -rf "$corpus" "$corpus.log"
      if [ "$status" -ne 0 ]; then
        echo "fuzzer ${target} found a problem (exit $status)"
        exit 1
      fi
    done
    # One closing line for everything: GoogleTest cases of both builds + fuzzers.
    cases=$(cat build/meson-logs/testlog.txt build-asan/meson-logs/testlog.txt |
      grep -oE '\[  PASSED  \] [0-9]+ tests?' | grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
    echo
    echo "all: $((cases + ${#fuzz_targets[@]})) passed, 0 failed"
    ;;
  *)
    echo "usage: bash tools/setup.sh run [ledgerd flags...] | test | bench [bench-vs-postgres.sh flags...]" >&2
    exit 2
    ;;
esac
