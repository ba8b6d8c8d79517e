# The MPI addon, built apart from the kernels (npm run build:mpi) because it needs Open MPI's headers
# and libmpi.so.40: require('stablegrad') never loads it, distributed.init() does.
{
  "targets": [
    {
      "target_name": "stablegrad_mpi",
      "sources": ["<!@(node -p \"require('../../sources.json').mpi.map((f) => '../../' + f).join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["-O2", "-pthread", "-Wall", "-Wextra", "<!@(mpicc --showme:compile)"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-fexceptions"],
      "ldflags": ["-pthread", "-Wl,-rpath,<!(mpicc --showme:libdirs)"],
      "libraries": ["<!@(mpicc --showme:link)", "-ldl"]
    }
  ]
}
