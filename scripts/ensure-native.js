#!/usr/bin/env node
// Before the tests and the benchmarks: make sure the native addon exists (a prebuild, or a
// build/Release from source). `npm ci` normally built it already through the install script;
// this covers installs that skipped scripts (npm 11 can block them) and fresh checkouts.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
try {
  require('node-gyp-build').path(root);
} catch {
  console.log('stablegrad: no native build found, compiling it (node-gyp rebuild)');
  execFileSync('npm', ['run', 'build:native', '--', '-j', '2'], { cwd: root, stdio: 'inherit' });
}

// the MPI addon (distributed training), where Open MPI's compiler wrapper is installed
const mpiAddon = path.join(root, 'native', 'mpi', 'build', 'Release', 'stablegrad_mpi.node');
const fs = require('node:fs');
let hasMpicc = false;
try {
  execFileSync('mpicc', ['--showme:version'], { stdio: 'ignore' });
  hasMpicc = true;
} catch {
  // no Open MPI: distributed.init() says what to install
}
if (hasMpicc && !fs.existsSync(mpiAddon)) {
  console.log('stablegrad: building the MPI addon (npm run build:mpi)');
  execFileSync('npm', ['run', 'build:mpi'], { cwd: root, stdio: 'inherit' });
}
