/**
 * Backend selection: native when it loads, else the TypeScript fallback with one warning carrying
 * the load error. STABLEGRAD_BACKEND=native|ts forces one (native that cannot load throws, with the
 * reason); STABLEGRAD_ISA=scalar|avx2|avx512 caps the native ISA; STABLEGRAD_THREADS sets the
 * thread count of either backend (default: every core this process may run on; the fallback
 * threads only its GEMM).
 */
import { loadNative } from './native.js';
import { tsBackend } from './ts/index.js';
import { ISAS, type Backend, type Isa } from './types.js';

export interface BackendInfo {
  name: 'native' | 'ts';
  isa: Isa | 'none';
  threads: number;
  /** Why the native backend did not load, when the fallback is in use. */
  loadError?: string;
}

let selected: Backend | undefined;
let loadError: string | undefined;

function envSettings(env: NodeJS.ProcessEnv) {
  const backend = env.STABLEGRAD_BACKEND || undefined;
  if (backend !== undefined && backend !== 'native' && backend !== 'ts')
    throw new RangeError(`STABLEGRAD_BACKEND must be 'native' or 'ts' but received '${backend}'`);
  const isa = env.STABLEGRAD_ISA || undefined;
  if (isa !== undefined && !(ISAS as readonly string[]).includes(isa))
    throw new RangeError(`STABLEGRAD_ISA must be one of ${ISAS.join(', ')} but received '${isa}'`);
  const threadsText = env.STABLEGRAD_THREADS || undefined;
  const threads = threadsText === undefined ? undefined : Number(threadsText);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 256))
    throw new RangeError(`STABLEGRAD_THREADS must be an integer from 1 to 256 but received '${threadsText}'`);
  return { backend, isa: isa as Isa | undefined, threads };
}

/** The native backend, or the fallback with one warning when it cannot load (and was not forced). */
function nativeOrFallback(forced: boolean): Backend {
  try {
    return loadNative();
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (forced) throw new Error(`stablegrad: STABLEGRAD_BACKEND=native but the native backend cannot load: ${reason}`);
    loadError = reason;
    process.emitWarning(`native backend unavailable, using the TypeScript fallback: ${reason}`, { code: 'STABLEGRAD_FALLBACK' });
    return tsBackend;
  }
}

function select(): Backend {
  const env = envSettings(process.env);
  const chosen = env.backend === 'ts' ? tsBackend : nativeOrFallback(env.backend === 'native');
  if (env.isa) chosen.setIsa(env.isa); // the fallback accepts any valid ISA and has none to cap
  if (env.threads) chosen.setThreads(env.threads);
  return chosen;
}

/** @internal Makes every operation run on b (tests run the Tensor layer on both backends). */
export function useBackend(b: Backend): void {
  selected = b;
}

/** The backend every operation runs on, chosen on first use. */
export function backend(): Backend {
  return (selected ??= select());
}

/**
 * Which backend runs, with which instruction set and how many threads.
 * @example
 * import { backendInfo } from 'stablegrad';
 * console.log(backendInfo()); // { name: 'native', isa: 'avx512', threads: 2 }
 * @throws {RangeError} when STABLEGRAD_BACKEND, STABLEGRAD_ISA or STABLEGRAD_THREADS has a bad value
 * @throws {Error} when STABLEGRAD_BACKEND=native and the addon cannot load
 */
export function backendInfo(): BackendInfo {
  const b = backend();
  const { isa, threads } = b.info();
  return loadError === undefined ? { name: b.name, isa, threads } : { name: b.name, isa, threads, loadError };
}
