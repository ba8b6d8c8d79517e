# The canonical build (node-gyp: the install fallback and prebuildify use it).
# Sources and per-ISA flags come from sources.json, which CMakeLists.txt reads too.
# Each kernel family is compiled once per ISA, into its own static library with its own target
# flags: scalar, avx2 and avx512 on x64 (-Wno-*uninitialized: GCC 12 warns inside its own
# avx512fintrin.h); scalar (plain C++, SG_PORTABLE) and neon on arm64. dispatch.cpp picks one at
# run time. Nothing is built -march=native. Functions start on a cache line (-falign-functions=64),
# so that a kernel's hot loop sits at the same offset in its line whatever code the linker places
# before it (a change to the binding moved GEMM's loops).
# On Linux the C++ runtime is linked in statically and kept private (--exclude-libs), and on glibc
# every symbol newer than 2.28 is bound to an older version (see glibc_floor.cpp): the prebuild
# needs nothing but glibc 2.28, libm and libgcc_s, which Node itself needs.
{
  "variables": {
    "glibc%": "<!(node -p \"process.platform === 'linux' && process.report.getReport().header.glibcVersionRuntime ? 1 : 0\")"
  },
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
      "sources": ["<!@(node -p \"require('./sources.json').kernels.join(' ')\")"],
      "conditions": [
        ["target_arch=='arm64'", {"cflags": ["<!@(node -p \"require('./sources.json').flags.scalar_arm64.join(' ')\")"]}]
      ]
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
      "target_name": "stablegrad_neon",
      "type": "static_library",
      "conditions": [
        ["target_arch=='arm64'", {
          "sources": ["<!@(node -p \"require('./sources.json').kernels.join(' ')\")"],
          "cflags": ["<!@(node -p \"require('./sources.json').flags.neon.join(' ')\")"]
        }]
      ]
    },
    {
      "target_name": "stablegrad",
      "sources": ["<!@(node -p \"require('./sources.json').common.join(' ')\")"],
      "dependencies": ["stablegrad_scalar", "stablegrad_avx2", "stablegrad_avx512", "stablegrad_neon"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["-pthread"],
      "ldflags": ["-pthread"],
      "conditions": [
        ["target_arch=='x64'", {"defines": ["SG_HAVE_AVX2", "SG_HAVE_AVX512"]}],
        ["target_arch=='arm64'", {"defines": ["SG_HAVE_NEON"]}],
        ["OS=='linux'", {"ldflags": ["-static-libstdc++", "-Wl,--exclude-libs,ALL"]}],
        ["OS=='linux' and glibc==1", {
          "defines": ["SG_GLIBC_FLOOR"],
          "ldflags": ["<!@(node -p \"require('./sources.json').glibc_wraps.map((s) => '-Wl,--wrap=' + s).join(' ')\")"]
        }]
      ]
    }
  ]
}
