/** Loads the native addon (a prebuild from prebuilds/, or build/Release from a source build). */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Backend, KernelInfo, MemoryHost } from './types.js';

/** The package root: the nearest folder above this file whose package.json is stablegrad's. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'stablegrad') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`stablegrad: cannot find the package root above ${__dirname}`);
    dir = up;
  }
}

// what node-gyp-build's "No native build was found for platform=... arch=..." leaves unsaid
const NO_PREBUILD = 'Prebuilds ship for linux-x64 and linux-arm64 with glibc 2.28 or later. Elsewhere on Linux ' +
  '(musl/Alpine, another architecture) build the addon from source (g++ or clang, make and Python 3): npm rebuild ' +
  'stablegrad, or where install scripts are disabled, npm explore stablegrad -- npm run build:native. macOS and ' +
  'Windows builds are not supported yet';

type Addon = Omit<Backend, 'name' | 'memory' | 'info'> & MemoryHost & { info(): KernelInfo };

/**
 * The native backend, or an Error saying why it cannot load. STABLEGRAD_ADDON names a .node file to
 * load instead of the prebuild or build/Release (a development build, e.g. the sanitizer build).
 */
export function loadNative(): Backend {
  const root = packageRoot();
  const require = createRequire(join(root, 'package.json'));
  const explicit = process.env.STABLEGRAD_ADDON;
  let addon: Addon;
  try {
    addon = (explicit ? require(explicit) : (require('node-gyp-build') as (dir: string) => Addon)(root)) as Addon;
  } catch (e) {
    if (e instanceof Error && /No native build was found/.test(e.message)) e.message = `${e.message.trimEnd()}\n${NO_PREBUILD}`;
    throw e;
  }
  const { alignedBlock, dropPages, watch, unwatch, isCollected, collectDead, ...kernels } = addon;
  const memory: MemoryHost = { alignedBlock, dropPages, watch, unwatch, isCollected, collectDead };
  return Object.assign(Object.create(null), kernels, { name: 'native' as const, memory }) as Backend;
}
