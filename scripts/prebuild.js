#!/usr/bin/env node
// The prebuilds that ship in the tarball (npm run prebuild, run by prepack):
//   prebuilds/linux-x64/stablegrad.node    built here by prebuildify
//   prebuilds/linux-arm64/stablegrad.node  cross-compiled with Debian's g++-aarch64-linux-gnu
//   prebuilds/linux-x64/mpi/stablegrad_mpi.node  the MPI addon (native/mpi) for this machine's
//                                          architecture, built against its Open MPI when mpicc is
//                                          there: it needs libmpi.so.40 where it runs
// The arm64 build runs in a copy of the sources (node-gyp builds into ./build, which holds this
// machine's addon). Without the cross compiler the arm64 prebuild is left out with a warning, or
// the script fails when STABLEGRAD_REQUIRE_ARM64=1 (CI). When .cache/prebuild-inputs.sha256 holds
// the hash of everything the builds read (the sources, the build files, the compilers, Open MPI's
// version, node-addon-api and Node), the prebuilds are left as they are: CI's package test and its
// emulated tests both need them, and building them takes 45-90 s.
//
//   node scripts/prebuild.js              all of them
//   node scripts/prebuild.js arm64 DIR    only the arm64 addon, built in DIR (the emulated tests)
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');

const root = join(__dirname, '..');
const CROSS = 'aarch64-linux-gnu-';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status}`})`);
}

// the version a tool prints, or null where it is not installed
function toolVersion(cmd, arg) {
  const r = spawnSync(cmd, [arg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : null;
}

// node-gyp's headers: npm's setting (Node's own headers on this machine), else node-gyp's download
function nodedirArgs() {
  const r = spawnSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' });
  const dir = r.status === 0 ? r.stdout.trim() : '';
  return dir && dir !== 'undefined' && dir !== 'null' ? [`--nodedir=${dir}`] : [];
}

/** Cross-compiles the arm64 addon in dir (a copy of the build's inputs); returns the .node's path. */
function buildArm64(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of ['binding.gyp', 'sources.json', 'package.json', 'native']) cpSync(join(root, f), join(dir, f), { recursive: true });
  rmSync(join(dir, 'native', 'mpi', 'build'), { recursive: true, force: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  const env = { ...process.env, CC: `${CROSS}gcc`, CXX: `${CROSS}g++`, AR: `${CROSS}ar`, LINK: `${CROSS}g++` };
  run(process.execPath, [nodeGyp(), 'rebuild', '--arch=arm64', ...nodedirArgs(), '-j', process.env.JOBS || '2'], { cwd: dir, env });
  return join(dir, 'build', 'Release', 'stablegrad.node');
}

// npm's own node-gyp (the one `npm run` puts on PATH)
function nodeGyp() {
  return require.resolve('node-gyp/bin/node-gyp.js', { paths: [join(process.execPath, '..', '..', 'lib', 'node_modules', 'npm')] });
}

/** The MPI addon, built in native/mpi (what npm run build:mpi does), stripped into prebuilds/ */
function buildMpi() {
  const dir = join(root, 'native', 'mpi');
  run(process.execPath, [nodeGyp(), 'rebuild', ...nodedirArgs(), '-j', process.env.JOBS || '2'], { cwd: dir });
  const dest = join(root, 'prebuilds', `linux-${process.arch}`, 'mpi', 'stablegrad_mpi.node');
  mkdirSync(dirname(dest), { recursive: true });
  execFileSync('strip', ['--strip-all', '-o', dest, join(dir, 'build', 'Release', 'stablegrad_mpi.node')]);
}

/** sha256 of what the prebuilds are made from, and of what makes them (tools: their versions) */
function inputsHash(tools) {
  const hash = createHash('sha256');
  const add = (file) => hash.update(`${file}\0`).update(readFileSync(join(root, file))).update('\0');
  for (const f of ['binding.gyp', 'sources.json', 'package.json']) add(f);
  const walk = (dir) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory()) {
        if (path !== 'native/mpi/build') walk(path);
      } else add(path);
    }
  };
  walk('native');
  add(join('node_modules', 'node-addon-api', 'package.json'));
  for (const version of tools) hash.update(version ?? 'none');
  return hash.update(process.version).digest('hex');
}

function main() {
  const [only, outDir] = process.argv.slice(2);
  if (only === 'arm64') {
    if (!outDir) throw new Error('usage: node scripts/prebuild.js arm64 DIR');
    console.log(buildArm64(outDir));
    return;
  }
  const [gxx, cross, mpi] = [['g++', '--version'], [`${CROSS}g++`, '--version'], ['mpicc', '--showme:version']]
    .map(([cmd, arg]) => toolVersion(cmd, arg));
  const stamp = join(root, '.cache', 'prebuild-inputs.sha256'), inputs = inputsHash([gxx, cross, mpi]);
  const arm64 = cross !== null || process.env.STABLEGRAD_REQUIRE_ARM64 === '1';
  const outputs = ['x64', ...(arm64 ? ['arm64'] : [])].map((arch) => join(root, 'prebuilds', `linux-${arch}`, 'stablegrad.node'));
  if (mpi) outputs.push(join(root, 'prebuilds', `linux-${process.arch}`, 'mpi', 'stablegrad_mpi.node'));
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === inputs && outputs.every((f) => existsSync(f))) {
    console.log('prebuild: prebuilds/ is up to date with its inputs');
    return;
  }
  const done = () => {
    mkdirSync(dirname(stamp), { recursive: true });
    writeFileSync(stamp, inputs);
  };
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  rmSync(stamp, { force: true });
  run(process.execPath, [require.resolve('prebuildify/bin.js', { paths: [root] }), '--napi', '--strip'], { cwd: root });
  if (mpi) buildMpi();
  else console.warn('warning: no mpicc (apt-get install libopenmpi-dev): the tarball will have no MPI prebuild (users build it: npm run build:mpi)');
  if (!cross) {
    const msg = `no ${CROSS}g++ (apt-get install g++-aarch64-linux-gnu): the tarball will have no linux-arm64 prebuild`;
    if (process.env.STABLEGRAD_REQUIRE_ARM64 === '1') throw new Error(msg);
    console.warn(`warning: ${msg}`);
    return done();
  }
  const dir = mkdtempSync(join(tmpdir(), 'stablegrad-arm64-'));
  try {
    const built = buildArm64(dir);
    mkdirSync(join(root, 'prebuilds', 'linux-arm64'), { recursive: true });
    const dest = join(root, 'prebuilds', 'linux-arm64', 'stablegrad.node');
    execFileSync(`${CROSS}strip`, ['--strip-all', '-o', dest, built]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  done();
}

try {
  main();
} catch (e) {
  console.error(`prebuild: ${e.message}`);
  process.exit(1);
}
