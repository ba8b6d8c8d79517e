# The MPI addon, built apart from the kernels (npm run build:mpi, and scripts/prebuild.js for the
# x64 prebuild) because it needs Open MPI's headers and libmpi.so.40: require('stablegrad') never
# loads it, distributed.init() does. As the kernels' addon (../../binding.gyp), on Linux the C++
# runtime is linked in statically and on glibc every symbol newer than 2.28 is bound to an older
# version (../glibc_floor.cpp): the prebuild needs libmpi.so.40 and what Node itself needs.
{
  "variables": {
    "glibc%": "<!(node -p \"process.platform === 'linux' && process.report.getReport().header.glibcVersionRuntime ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "stablegrad_mpi",
      "sources": ["<!@(node -p \"require('../../sources.json').mpi.map((f) => '../../' + f).join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["-O2", "-fPIC", "-pthread", "-Wall", "-Wextra", "<!@(mpicc --showme:compile)"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-fexceptions"],
      "ldflags": ["-pthread", "-Wl,-rpath,<!(mpicc --showme:libdirs)"],
      "libraries": ["<!@(mpicc --showme:link)", "-ldl"],
      "conditions": [
        ["OS=='linux'", {"ldflags": ["-static-libstdc++", "-Wl,--exclude-libs,ALL"]}],
        ["OS=='linux' and glibc==1", {
          "sources": ["../glibc_floor.cpp"],
          "defines": ["SG_GLIBC_FLOOR", "SG_GLIBC_FLOOR_DL"],
          "ldflags": ["<!@(node -p \"[...require('../../sources.json').glibc_wraps, 'dlopen', 'dlerror'].map((s) => '-Wl,--wrap=' + s).join(' ')\")"]
        }]
      ]
    }
  ]
}
