/**
 * Argument checks for the TypeScript fallback, giving the same error class and the same text as
 * the native binding (native/binding.cpp, class Args): TypeError for the wrong kind, RangeError for
 * the wrong size. test/bad-input.test.ts holds the two equal.
 */

const MAX_SIZE = 2147483647;

/** The JavaScript name of a value's kind: number, null, Float64Array, Array, object, ... */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v instanceof DataView ? 'object' : v.constructor.name;
  if (Array.isArray(v)) return 'Array';
  if (v instanceof ArrayBuffer) return 'ArrayBuffer';
  return typeof v;
}

export class Args {
  constructor(readonly fn: string, private readonly args: readonly unknown[], count: number) {
    if (args.length !== count) this.typeError(`expected ${count} arguments but received ${args.length}`);
  }

  typeError(msg: string): never {
    throw new TypeError(`${this.fn}: ${msg}`);
  }

  rangeError(msg: string): never {
    throw new RangeError(`${this.fn}: ${msg}`);
  }

  /** An integer in [lo, 2^31 - 1]. */
  size(i: number, name: string, lo = 0): number {
    const v = this.args[i];
    if (typeof v !== 'number') this.typeError(`expected ${name} to be a number but received ${describe(v)}`);
    if (!(v >= lo && v <= MAX_SIZE && Number.isInteger(v)))
      this.rangeError(`expected ${name} to be an integer from ${lo} to ${MAX_SIZE} but received ${String(v)}`);
    return v;
  }

  number(i: number, name: string): number {
    const v = this.args[i];
    if (typeof v !== 'number') this.typeError(`expected ${name} to be a number but received ${describe(v)}`);
    if (!Number.isFinite(v)) this.rangeError(`expected ${name} to be a finite number but received ${String(v)}`);
    return v;
  }

  flag(i: number, name: string): boolean {
    const v = this.args[i];
    if (typeof v !== 'boolean') this.typeError(`expected ${name} to be a boolean but received ${describe(v)}`);
    return v;
  }

  /** A Float32Array of exactly len elements (at least len when atLeast). */
  f32(i: number, name: string, len: number, atLeast = false): Float32Array {
    return this.typed(i, name, Float32Array, len, atLeast, false) as Float32Array;
  }

  f32OrNull(i: number, name: string, len: number): Float32Array | null {
    return this.typed(i, name, Float32Array, len, false, true) as Float32Array | null;
  }

  i32(i: number, name: string, len: number): Int32Array {
    return this.typed(i, name, Int32Array, len, false, false) as Int32Array;
  }

  /** A Uint8Array of exactly len elements. */
  u8(i: number, name: string, len: number): Uint8Array {
    return this.typed(i, name, Uint8Array, len, false, false) as Uint8Array;
  }

  /** The length of a Uint8Array argument of any length. */
  u8Length(i: number, name: string): number {
    return this.typed(i, name, Uint8Array, 0, true, false)!.length;
  }

  /** The length of a Float32Array argument (n for elementwise kernels). */
  length(i: number, name: string): number {
    return this.f32(i, name, 0, true).length;
  }

  noOverlap(out: number, outName: string, input: number, inName: string): void {
    const a = this.args[out] as ArrayBufferView, b = this.args[input] as ArrayBufferView;
    if (a.buffer !== b.buffer || a.byteLength === 0 || b.byteLength === 0) return;
    if (a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength)
      this.rangeError(`${outName} must not overlap ${inName}`);
  }

  private typed(i: number, name: string, type: typeof Float32Array | typeof Int32Array | typeof Uint8Array, len: number,
    atLeast: boolean, nullable: boolean): Float32Array | Int32Array | Uint8Array | null {
    const v = this.args[i];
    if (nullable && v === null) return null;
    if (!(v instanceof type))
      this.typeError(`expected ${name} to be a ${type.name}${nullable ? ' or null' : ''} but received ${describe(v)}`);
    const have = v.length;
    if (atLeast ? have < len : have !== len)
      this.rangeError(`expected ${name} ${atLeast ? 'to have at least' : 'to have length'} ${len}${atLeast ? ' elements' : ''} but received ${have}`);
    return v;
  }
}

/** The training-mode check of PyTorch's batch_norm, with its message. */
export function checkValuesPerChannel(a: Args, N: number, C: number, S: number): void {
  if (N * S > 1) return;
  a.rangeError(`Expected more than 1 value per channel when training, got input size [${N}, ${C}${S > 1 ? `, ${S}` : ''}]`);
}

export function checkTargets(a: Args, targets: Int32Array, R: number, K: number): void {
  for (let r = 0; r < R; r++)
    if (targets[r] < 0 || targets[r] >= K) a.rangeError(`targets[${r}] = ${targets[r]} is out of range [0, ${K})`);
}

export function checkRowIndices(a: Args, indices: Int32Array, R: number, rows: number): void {
  for (let r = 0; r < R; r++)
    if (indices[r] < 0 || indices[r] >= rows) a.rangeError(`indices[${r}] = ${indices[r]} is out of range [0, ${rows}) (the rows of src)`);
}

export function checkLabelSmoothing(a: Args, ls: number): void {
  if (ls < 0 || ls > 1) a.rangeError(`expected labelSmoothing to be in [0, 1] but received ${String(ls)}`);
}

export interface ConvDims {
  N: number; C: number; H: number; W: number; KH: number; KW: number;
  SH: number; SW: number; PH: number; PW: number; OH: number; OW: number;
}

/** Reads N, C, H, W, KH, KW, SH, SW, PH, PW from arguments first..first+9. */
export function convDims(a: Args, first: number): ConvDims {
  const N = a.size(first, 'N'), C = a.size(first + 1, 'C'), H = a.size(first + 2, 'H'), W = a.size(first + 3, 'W');
  const KH = a.size(first + 4, 'KH', 1), KW = a.size(first + 5, 'KW', 1);
  const SH = a.size(first + 6, 'SH', 1), SW = a.size(first + 7, 'SW', 1);
  const PH = a.size(first + 8, 'PH'), PW = a.size(first + 9, 'PW');
  if (H + 2 * PH < KH || W + 2 * PW < KW)
    a.rangeError(`kernel ${KH}x${KW} does not fit input ${H}x${W} with padding ${PH}x${PW}`);
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1, OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  return { N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW };
}
