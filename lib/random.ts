/**
 * The one seeded generator behind initialisation, dropout and shuffling: xoshiro128** (32-bit
 * state words, exact in JavaScript), normals by Box-Muller. Like PyTorch's default generator it
 * starts from a fixed seed, so programs are reproducible even without manualSeed().
 */

const DEFAULT_SEED = 67280421310721 % 2 ** 32;
const state = new Uint32Array(4);
let spareNormal: number | null = null;

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * Seeds the generator that drives initialisation, dropout and shuffling.
 * @example
 * manualSeed(0);
 * const a = randn([2, 2]);
 * manualSeed(0);
 * randn([2, 2]); // the same values as a
 * @throws {TypeError} when seed is not a number
 * @throws {RangeError} when seed is not a non-negative safe integer
 */
export function manualSeed(seed: number): void {
  if (typeof seed !== 'number') throw new TypeError(`manualSeed: expected seed to be a number but received ${typeof seed}`);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`manualSeed: expected seed to be a non-negative safe integer but received ${seed}`);
  const next = splitmix32((seed % 2 ** 32) ^ Math.floor(seed / 2 ** 32));
  for (let i = 0; i < 4; i++) state[i] = next();
  spareNormal = null;
}
manualSeed(DEFAULT_SEED);

/** A uniform 32-bit integer. */
export function nextUint32(): number {
  const [s0, s1, s2, s3] = state;
  const r = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
  const t = (s1 << 9) >>> 0;
  state[2] = s2 ^ s0;
  state[3] = s3 ^ s1;
  state[1] = s1 ^ state[2];
  state[0] = s0 ^ state[3];
  state[2] ^= t;
  state[3] = rotl(state[3], 11);
  return r;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Uniform in [0, 1) with 32 random bits. */
export function uniform(): number {
  return nextUint32() / 4294967296;
}

/** Standard normal. */
export function normal(): number {
  if (spareNormal !== null) {
    const v = spareNormal;
    spareNormal = null;
    return v;
  }
  const u = 1 - uniform(), v = uniform();
  const r = Math.sqrt(-2 * Math.log(u));
  spareNormal = r * Math.sin(2 * Math.PI * v);
  return r * Math.cos(2 * Math.PI * v);
}
