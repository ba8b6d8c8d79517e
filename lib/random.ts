/**
 * Seeded random numbers: xoshiro128** (32-bit state words, exact in JavaScript), normals by
 * Box-Muller. One default generator drives initialisation, dropout and shuffling; like PyTorch's
 * it starts from a fixed seed, so programs are reproducible even without manualSeed(). A
 * DataLoader given its own seed uses its own Generator.
 */

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

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A generator's state (see Generator.getState). */
export interface GeneratorState {
  state: number[];
  spareNormal: number | null;
}

export class Generator {
  private readonly state = new Uint32Array(4);
  private spareNormal: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  seed(seed: number): void {
    if (typeof seed !== 'number') throw new TypeError(`manualSeed: expected seed to be a number but received ${typeof seed}`);
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`manualSeed: expected seed to be a non-negative safe integer but received ${seed}`);
    const next = splitmix32((seed % 2 ** 32) ^ Math.floor(seed / 2 ** 32));
    for (let i = 0; i < 4; i++) this.state[i] = next();
    this.spareNormal = null;
  }

  /** The generator's state, as plain JSON-able values (for a checkpoint). */
  getState(): GeneratorState {
    return { state: [...this.state], spareNormal: this.spareNormal };
  }

  /**
   * Puts the generator back in a state getState() returned: the same numbers follow.
   * @throws {TypeError} when state is not such a state
   */
  setState(state: GeneratorState): void {
    const s = state?.state;
    if (!Array.isArray(s) || s.length !== 4 || !s.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32) || s.every((v) => v === 0) ||
      !(state.spareNormal === null || typeof state.spareNormal === 'number'))
      throw new TypeError(`Generator.setState: expected { state: four 32-bit unsigned integers, not all 0, spareNormal: number | null } but received ${JSON.stringify(state)}`);
    this.state.set(s);
    this.spareNormal = state.spareNormal;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.state, s1 = s[1];
    const r = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Standard normal. */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    const u = 1 - this.uniform(), v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A uniformly random permutation of 0 .. n-1 (Fisher-Yates), into `out` when given (n values). */
  permutation(n: number, out?: Int32Array): Int32Array {
    const p = out ?? new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}

/** The default generator (PyTorch's default seed, 67280421310721, folded to 32 bits). */
export const defaultGenerator = new Generator(67280421310721 % 2 ** 32);

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
  defaultGenerator.seed(seed);
}

/** The state of the generator behind initialisation, dropout and shuffling (PyTorch's get_rng_state). */
export function getRngState(): GeneratorState {
  return defaultGenerator.getState();
}

/** Restores that generator's state (PyTorch's set_rng_state). @throws {TypeError} on a malformed state */
export function setRngState(state: GeneratorState): void {
  defaultGenerator.setState(state);
}

export const uniform = (): number => defaultGenerator.uniform();
export const normal = (): number => defaultGenerator.normal();
