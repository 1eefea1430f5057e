#!/usr/bin/env bash
# The two commands of a fresh machine (see README):
#   bash tools/setup.sh run    install what is missing, build, run ledgerd on 127.0.0.1:8080
#   bash tools/setup.sh test   install what is missing, build, run every test suite
# Extra arguments after `run` go to ledgerd (e.g. --data DIR, --listen HOST:PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build, the tests and the benchmarks use.
PACKAGES=(g++ meson ninja-build pkg-config capnproto libcapnp-dev librocksdb-dev
          libsimdjson-dev libxxhash-dev libboost-dev libgtest-dev libbenchmark-dev
          clang-format curl)

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

# build DIR [meson options...]: configure once, then (re)build.
build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@"
  else
    meson configure "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir"
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
    build build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
      "${werror[@]}"
    log "tests (address + undefined sanitizers)"
    meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
    ;;
  *)
    echo "usage: bash tools/setup.sh run [ledgerd flags...] | test" >&2
    exit 2
    ;;
esac
