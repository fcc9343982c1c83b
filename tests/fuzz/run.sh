#!/bin/sh
# Builds hubnode's libFuzzer targets with clang++-14 and runs each one for a
# bounded number of inputs over a copy of its seed corpus. Registered as the
# meson test "fuzz" by tests/fuzz/meson.build; by hand:
#
#   tests/fuzz/run.sh CLANG SOURCE_ROOT WORK_DIR [TARGET...]
#   FUZZ_RUNS=1000000 tests/fuzz/run.sh clang++-14 . build/tests/fuzz fuzz_protocol
#
# A target is rebuilt only when its harness or a file in src/ changed. Needs Debian's
# clang-14 and libclang-rt-14-dev (the libFuzzer and sanitizer runtimes).
# A crash fails the test; the input is left as WORK_DIR/crash-<target>-*: add
# it to tests/fuzz/corpus/<target>/ as a regression seed once fixed.
set -u

clang=$1
root=$(cd "$2" && pwd)
work=$3
shift 3
runs=${FUZZ_RUNS:-20000}
max_len=${FUZZ_MAX_LEN:-8192}
mkdir -p "$work"
work=$(cd "$work" && pwd)

targets=${*:-fuzz_protocol fuzz_user_id fuzz_jwt fuzz_http fuzz_websocket_frame}

sources_of() {
  case $1 in
  fuzz_protocol) echo src/wire/protocol.cpp src/wire/json_member.cpp src/wire/channel_name.cpp src/base/user_id.cpp ;;
  fuzz_user_id) echo src/base/user_id.cpp ;;
  fuzz_jwt) echo src/wire/jwt.cpp src/base/user_id.cpp ;;
  fuzz_http) echo src/wire/http_target.cpp src/base/user_id.cpp ;;
  fuzz_websocket_frame) echo src/wire/websocket_frame.cpp ;;
  *) echo "unknown fuzz target $1" >&2; exit 2 ;;
  esac
}

# Fails early, with the package to install, when clang has no libFuzzer.
probe=$work/probe
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
  > "$probe.cpp"
if ! "$clang" -fsanitize=fuzzer,address,undefined "$probe.cpp" -o "$probe" 2> "$probe.log"; then
  cat "$probe.log" >&2
  echo "fuzz: $clang cannot link -fsanitize=fuzzer; install libclang-rt-14-dev" >&2
  exit 1
fi

stale() { # target binary, sources...
  bin=$1
  shift
  [ -x "$bin" ] || return 0
  [ -n "$(find "$@" "$root/src" "$root/tests/fuzz/run.sh" \
    -newer "$bin" -type f 2>/dev/null | head -n 1)" ]
}

build() { # target; leaves $work/$t.failed when the compile fails
  t=$1
  srcs=""
  for s in $(sources_of "$t"); do srcs="$srcs $root/$s"; done
  rm -f "$work/$t.failed"
  # shellcheck disable=SC2086
  if stale "$work/$t" "$root/tests/fuzz/$t.cpp" "$root/tests/jwt_sign.hpp" $srcs; then
    # shellcheck disable=SC2086
    if ! "$clang" -std=c++17 -O1 -g -fno-omit-frame-pointer \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -I"$root" "$root/tests/fuzz/$t.cpp" $srcs \
      -lboost_json -lfmt -lcrypto -o "$work/$t" > "$work/$t.build.log" 2>&1; then
      rm -f "$work/$t"
      touch "$work/$t.failed"
    fi
  fi
}

enabled=""
for t in $targets; do
  enabled="$enabled $t"
done

# Targets build in parallel; a failed build prints its compiler output.
for t in $enabled; do build "$t" & done
wait
status=0
for t in $enabled; do
  if [ -f "$work/$t.failed" ] || [ ! -x "$work/$t" ]; then
    echo "fuzz: building $t failed:" >&2
    cat "$work/$t.build.log" >&2
    status=1
  fi
done
[ $status -eq 0 ] || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
for t in $enabled; do
  corpus=$work/corpus-$t
  rm -rf "$corpus"
  mkdir -p "$corpus"
  cp "$root/tests/fuzz/corpus/$t/"* "$corpus/"
  start=$(date +%s)
  if ! "$work/$t" -runs="$runs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/crash-$t-" "$corpus" \
    > "$work/$t.log" 2>&1; then
    cat "$work/$t.log" >&2
    echo "fuzz: $t FAILED; reproducer(s):" >&2
    ls "$work/crash-$t-"* >&2 2>/dev/null
    status=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n 1)
  echo "fuzz: $t ok: $execs inputs, $cov, $(($(date +%s) - start)) s"
done
exit $status
