#!/usr/bin/env bash
# The test suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the addon
# (CMakeLists.txt, STABLEGRAD_SANITIZE=ON). Node itself is not instrumented, so the sanitizer
# runtimes are preloaded; leak detection is off because V8 keeps allocations alive at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js compile --out build-asan -p 2 --CDSTABLEGRAD_SANITIZE=ON >/dev/null
export STABLEGRAD_ADDON="$PWD/build-asan/Release/stablegrad.node"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
exec npx vitest run --exclude test/package.test.ts "$@"
