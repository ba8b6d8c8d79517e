# The canonical build (node-gyp: the install fallback and prebuildify use it).
# Sources and per-ISA flags come from sources.json, which CMakeLists.txt reads too.
# Each kernel family is compiled three times, once per ISA, into its own static library with its
# own target flags (-Wno-*uninitialized: GCC 12 warns inside its own avx512fintrin.h);
# dispatch.cpp picks one at run time from cpuid. Nothing is built -march=native. Functions start
# on a cache line (-falign-functions=64), so that a kernel's hot loop sits at the same offset in
# its line whatever code the linker places before it (a change to the binding moved GEMM's loops).
{
  "target_defaults": {
    "cflags": ["-O3", "-fno-math-errno", "-falign-functions=64", "-fPIC", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-fexceptions"],
    "include_dirs": ["native"]
  },
  "targets": [
    {
      "target_name": "stablegrad_scalar",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./sources.json').kernels.join(' ')\")"]
    },
    {
      "target_name": "stablegrad_avx2",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node -p \"require('./sources.json').kernels.join(' ')\")"],
          "cflags": ["<!@(node -p \"require('./sources.json').flags.avx2.join(' ')\")"]
        }]
      ]
    },
    {
      "target_name": "stablegrad_avx512",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node -p \"require('./sources.json').kernels.join(' ')\")"],
          "cflags": ["<!@(node -p \"require('./sources.json').flags.avx512.join(' ')\")", "-Wno-maybe-uninitialized", "-Wno-uninitialized"]
        }]
      ]
    },
    {
      "target_name": "stablegrad",
      "sources": ["<!@(node -p \"require('./sources.json').common.join(' ')\")"],
      "dependencies": ["stablegrad_scalar", "stablegrad_avx2", "stablegrad_avx512"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["-pthread"],
      "ldflags": ["-pthread"],
      "conditions": [
        ["target_arch=='x64'", {"defines": ["SG_HAVE_AVX2", "SG_HAVE_AVX512"]}]
      ]
    }
  ]
}
