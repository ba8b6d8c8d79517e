/**
 * The Tensor ops a training script reaches for beyond the layers: joining and cutting (cat, stack,
 * split, narrow, indexSelect), reshaping views (unsqueeze, squeeze, flatten), batched matmul,
 * elementwise math, comparisons and where, var/std. PyTorch's names and semantics in JS casing,
 * each with autograd. Tensors are contiguous, so cutting copies; reshaping shares the values.
 */
import { backend } from './backend/index.js';
import { allocate, allocateZeroed, release } from './memory.js';
import {
  asTensor, binary, permuteCopy, broadcastIndex, broadcastShape, fmt, gather, map, mean, mul, normDim, record, reduceTo, sameShape,
  sizeOf, sqrt, sub, sum, Tensor, unary,
} from './tensor.js';

type Index = Int32Array | readonly number[] | Tensor;

function checkTensor(fn: string, x: unknown, name = 'input'): Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`${fn}: expected ${name} to be a Tensor but received ${x === null ? 'null' : typeof x}`);
  return x;
}

function checkInt(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${fn}: expected ${name} to be an integer but received ${String(v)}`);
  return v;
}

/** x viewed as (outer, n, inner) around dimension d. */
function blocks(shape: readonly number[], d: number) {
  return { outer: sizeOf(shape.slice(0, d)), n: shape[d], inner: sizeOf(shape.slice(d + 1)) };
}

/** The [start, start + length) slice of x's dimension d, copied: out (outer, length, inner). */
function copySlice(v: Float32Array, shape: readonly number[], d: number, start: number, length: number): Float32Array {
  const { outer, n, inner } = blocks(shape, d), out = allocate(outer * length * inner);
  for (let o = 0; o < outer; o++)
    out.set(v.subarray((o * n + start) * inner, (o * n + start + length) * inner), o * length * inner);
  return out;
}

/**
 * Tensors joined along dim; every other dimension must match.
 * @example cat([zeros([2, 3]), ones([1, 3])]) // shape [3, 3]
 * @throws {RangeError} when the list is empty or the shapes differ outside dim
 */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) throw new RangeError('cat: expected a non-empty array of Tensors');
  tensors.forEach((t, i) => checkTensor('cat', t, `tensors[${i}]`));
  const first = tensors[0], d = normDim('cat', dim, first.ndim);
  tensors.forEach((t, i) => {
    if (t.ndim !== first.ndim || t.shape.some((s, j) => j !== d && s !== first.shape[j]))
      throw new RangeError(`cat: expected tensors[${i}] of shape ${fmt(first.shape.map((s, j) => (j === d ? t.shape[d] ?? s : s)))} ` +
        `(the shape of tensors[0] but for dimension ${d}) but received ${fmt(t.shape)}`);
  });
  const sizes = tensors.map((t) => t.shape[d]), total = sizes.reduce((a, b) => a + b, 0);
  const shape = first.shape.map((s, j) => (j === d ? total : s));
  const { outer, inner } = blocks(shape, d), out = allocate(sizeOf(shape));
  for (let o = 0, at = 0; o < outer; o++)
    for (const t of tensors) {
      const n = t.shape[d] * inner;
      out.set(t.values.subarray(o * n, (o + 1) * n), at);
      at += n;
    }
  return record('cat', out, shape, [...tensors], (g) => {
    let start = 0;
    return tensors.map((t, i) => {
      const ig = t.requiresGrad ? copySlice(g, shape, d, start, sizes[i]) : null;
      start += sizes[i];
      return ig;
    });
  });
}

/**
 * Tensors of one shape stacked along a new dimension dim.
 * @example stack([zeros([3]), ones([3])]) // shape [2, 3]
 * @throws {RangeError} when the list is empty or the shapes differ
 */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) throw new RangeError('stack: expected a non-empty array of Tensors');
  const first = checkTensor('stack', tensors[0], 'tensors[0]');
  tensors.forEach((t, i) => {
    if (!sameShape(checkTensor('stack', t, `tensors[${i}]`).shape, first.shape))
      throw new RangeError(`stack: expected every tensor of shape ${fmt(first.shape)} but tensors[${i}] has shape ${fmt(t.shape)}`);
  });
  const d = normDim('stack', dim, first.ndim + 1);
  return cat(tensors.map((t) => unsqueeze(t, d)), d);
}

/**
 * The slice [start, start + length) of dimension dim (a copy, in the graph); start may be negative.
 * @example narrow(x, 1, 0, 2) // the first two columns
 * @throws {RangeError} when the slice is outside the dimension
 */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  checkTensor('narrow', x);
  const d = normDim('narrow', dim, x.ndim), n = x.shape[d];
  checkInt('narrow', 'start', start);
  checkInt('narrow', 'length', length);
  const s = start < 0 ? start + n : start;
  if (s < 0 || length < 0 || s + length > n)
    throw new RangeError(`narrow: start ${start} and length ${length} are out of range for dimension ${d} of size ${n} (shape ${fmt(x.shape)})`);
  const shape = x.shape.map((v, j) => (j === d ? length : v));
  return record('narrow', copySlice(x.values, x.shape, d, s, length), shape, [x], (g) => {
    const { outer, inner } = blocks(x.shape, d), dx = allocateZeroed(x.size);
    for (let o = 0; o < outer; o++) dx.set(g.subarray(o * length * inner, (o + 1) * length * inner), (o * n + s) * inner);
    return [dx];
  });
}

/**
 * The entry `index` of dimension dim, that dimension removed (x[:, index] for dim 1); index may be negative.
 * @example select(x, 0, -1) // the last row
 * @throws {RangeError} when index is out of range
 */
export function select(x: Tensor, dim: number, index: number): Tensor {
  checkTensor('select', x);
  const d = normDim('select', dim, x.ndim), n = x.shape[d];
  checkInt('select', 'index', index);
  if (index < -n || index >= n) throw new RangeError(`select: index ${index} is out of range for dimension ${d} of size ${n}`);
  return narrow(x, d, index, 1).reshape(x.shape.filter((_, j) => j !== d));
}

/**
 * Pieces along dim: of splitSize each (the last may be smaller), or of the listed sizes.
 * @example split(arange(5), 2).map((t) => t.size) // [2, 2, 1]
 * @throws {RangeError} when the sizes do not add up to the dimension
 */
export function split(x: Tensor, splitSize: number | readonly number[], dim = 0): Tensor[] {
  checkTensor('split', x);
  const d = normDim('split', dim, x.ndim), n = x.shape[d];
  let sizes: number[];
  if (Array.isArray(splitSize)) {
    sizes = splitSize.map((v, i) => checkInt('split', `splitSize[${i}]`, v));
    if (sizes.some((v) => v < 0) || sizes.reduce((a, b) => a + b, 0) !== n)
      throw new RangeError(`split: expected sizes adding up to ${n} (dimension ${d} of ${fmt(x.shape)}) but received ${fmt(sizes)}`);
  } else {
    const size = checkInt('split', 'splitSize', splitSize);
    if (size < 1) throw new RangeError(`split: expected splitSize to be a positive integer but received ${size}`);
    sizes = Array.from({ length: Math.max(1, Math.ceil(n / size)) }, (_, i) => Math.min(size, n - i * size));
  }
  let start = 0;
  return sizes.map((size) => {
    const piece = narrow(x, d, start, size);
    start += size;
    return piece;
  });
}

/**
 * At most `chunks` pieces of equal size along dim (the last may be smaller), as torch.chunk.
 * @example chunk(arange(6), 3).length // 3
 * @throws {RangeError} when chunks is not a positive integer
 */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor('chunk', x);
  if (checkInt('chunk', 'chunks', chunks) < 1) throw new RangeError(`chunk: expected chunks to be a positive integer but received ${chunks}`);
  const d = normDim('chunk', dim, x.ndim);
  return split(x, Math.max(1, Math.ceil(x.shape[d] / chunks)), d);
}

function indicesOf(fn: string, index: Index, n: number): Int32Array {
  let values: ArrayLike<number>;
  if (index instanceof Tensor) {
    if (index.ndim > 1) throw new RangeError(`${fn}: expected index to be 1-D but received shape ${fmt(index.shape)}`);
    values = index.values;
  } else if (index instanceof Int32Array || Array.isArray(index)) values = index;
  else throw new TypeError(`${fn}: expected index to be an Int32Array, an array of integers or a 1-D Tensor`);
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < -n || v >= n) throw new RangeError(`${fn}: index[${i}] = ${v} is out of range for a dimension of size ${n}`);
    out[i] = v < 0 ? v + n : v;
  }
  return out;
}

/**
 * The entries of dimension dim at the given indices, in their order (repeats allowed).
 * @example indexSelect(x, 0, [2, 0]) // rows 2 and 0
 * @throws {RangeError} when an index is out of range
 */
export function indexSelect(x: Tensor, dim: number, index: Index): Tensor {
  checkTensor('indexSelect', x);
  const d = normDim('indexSelect', dim, x.ndim), { outer, n, inner } = blocks(x.shape, d);
  const at = indicesOf('indexSelect', index, n), m = at.length;
  const out = allocate(outer * m * inner), v = x.values;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < m; i++) out.set(v.subarray((o * n + at[i]) * inner, (o * n + at[i] + 1) * inner), (o * m + i) * inner);
  return record('indexSelect', out, x.shape.map((s, j) => (j === d ? m : s)), [x], (g) => {
    const dx = allocateZeroed(x.size);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < m; i++) {
        const to = (o * n + at[i]) * inner, from = (o * m + i) * inner;
        for (let k = 0; k < inner; k++) dx[to + k] += g[from + k];
      }
    return [dx];
  });
}

/** x with a dimension of size 1 inserted at dim (shares values). @example unsqueeze(zeros([3]), 0) // shape [1, 3] */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  checkTensor('unsqueeze', x);
  const d = normDim('unsqueeze', dim, x.ndim + 1);
  return x.reshape([...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

/** x without its dimensions of size 1, or without dim when its size is 1 (shares values). @example squeeze(zeros([1, 3, 1])) // shape [3] */
export function squeeze(x: Tensor, dim?: number): Tensor {
  checkTensor('squeeze', x);
  if (dim === undefined) return x.reshape(x.shape.filter((s) => s !== 1));
  const d = normDim('squeeze', dim, x.ndim);
  return x.shape[d] === 1 ? x.reshape(x.shape.filter((_, j) => j !== d)) : x.reshape(x.shape);
}

/** Dimensions startDim..endDim merged into one (shares values). @example flatten(zeros([2, 3, 4]), 1) // shape [2, 12] */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  checkTensor('flatten', x);
  if (x.ndim === 0) return x.reshape([1]);
  const s = normDim('flatten', startDim, x.ndim), e = normDim('flatten', endDim, x.ndim);
  if (s > e) throw new RangeError(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  return x.reshape([...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/**
 * The dimensions of x in the given order (a copy), as torch.permute.
 * @example permute(zeros([2, 3, 4]), [2, 0, 1]) // shape [4, 2, 3]
 * @throws {RangeError} when dims is not an ordering of x's dimensions
 */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor('permute', x);
  const order = Array.isArray(dims) ? dims.map((d) => normDim('permute', d, x.ndim)) : [];
  if (order.length !== x.ndim || new Set(order).size !== x.ndim)
    throw new RangeError(`permute: expected an ordering of the ${x.ndim} dimensions of ${fmt(x.shape)} but received ${JSON.stringify(dims)}`);
  return permuteCopy(x, order);
}

/**
 * Batched matrix product as torch.matmul, for inputs of 3 or more dimensions (the batch dimensions
 * broadcast; a 1-D input is a vector as in the 2-D case). Each batch is one GEMM.
 */
export function batchedMatmul(a: Tensor, b: Tensor): Tensor {
  const aShape = a.ndim === 1 ? [1, a.shape[0]] : a.shape, bShape = b.ndim === 1 ? [b.shape[0], 1] : b.shape;
  const [M, K] = aShape.slice(-2), [K2, N] = bShape.slice(-2);
  if (K !== K2) throw new RangeError(`matmul: shapes ${fmt(a.shape)} and ${fmt(b.shape)} cannot be multiplied (${K} != ${K2})`);
  const aBatch = aShape.slice(0, -2), bBatch = bShape.slice(0, -2);
  const batch = broadcastShape('matmul', aBatch, bBatch), count = sizeOf(batch);
  const aAt = broadcastIndex(aBatch, batch), bAt = broadcastIndex(bBatch, batch);
  const k = backend(), out = allocate(count * M * N), ld = (v: number) => Math.max(v, 1);
  // the i-th matrix of rows x cols in v
  const mat = (v: Float32Array, i: number, rows: number, cols: number) => v.subarray(i * rows * cols, (i + 1) * rows * cols);
  for (let i = 0; i < count; i++)
    k.sgemm(mat(out, i, M, N), mat(a.values, aAt[i], M, K), mat(b.values, bAt[i], K, N), M, N, K, false, false, 1, 0, ld(K), ld(N), ld(N));
  const shape = [...batch, ...(a.ndim === 1 ? [] : [M]), ...(b.ndim === 1 ? [] : [N])];
  return record('matmul', out, shape, [a, b], (g) => {
    let ga: Float32Array | null = null, gb: Float32Array | null = null;
    if (a.requiresGrad) {
      const full = allocate(count * M * K); // per batch dA = g . B^T, then summed over broadcast batch dimensions
      for (let i = 0; i < count; i++)
        k.sgemm(mat(full, i, M, K), mat(g, i, M, N), mat(b.values, bAt[i], K, N), M, K, N, false, true, 1, 0, ld(N), ld(N), ld(K));
      ga = reduceTo(full, [...batch, M, K], aShape);
      if (ga !== full) release(full);
    }
    if (b.requiresGrad) {
      const full = allocate(count * K * N); // per batch dB = A^T . g
      for (let i = 0; i < count; i++)
        k.sgemm(mat(full, i, K, N), mat(a.values, aAt[i], M, K), mat(g, i, M, N), K, N, M, true, false, 1, 0, ld(K), ld(N), ld(N));
      gb = reduceTo(full, [...batch, K, N], bShape);
      if (gb !== full) release(full);
    }
    release(aAt);
    release(bAt);
    return [ga, gb];
  });
}

/** |x| elementwise (gradient sign(x), 0 at 0). @example abs(tensor([-1, 2])) */
export const abs = (x: Tensor) => unary('abs', x, (o, v) => o.set(map(v, Math.abs)), (g, v) => map(g, (d, i) => (v[i] > 0 ? d : v[i] < 0 ? -d : 0)));
/** -x elementwise. @example neg(x) */
export const neg = (x: Tensor) => unary('neg', x, (o, v) => o.set(map(v, (a) => -a)), (g) => map(g, (d) => -d));
/** x * x elementwise. @example square(x) */
export const square = (x: Tensor) => unary('square', x, (o, v) => backend().mul(o, v, v), (g, v) => map(g, (d, i) => 2 * d * v[i]));

/**
 * x limited to [min, max] (either may be null: no bound); the gradient passes where min <= x <= max.
 * @example clamp(x, 0, 1)
 * @throws {RangeError} when neither bound is given
 */
export function clamp(x: Tensor, min: number | null = null, max: number | null = null): Tensor {
  if (min === null && max === null) throw new RangeError('clamp: expected at least one of min and max');
  for (const [name, v] of [['min', min], ['max', max]] as const)
    if (v !== null && typeof v !== 'number') throw new TypeError(`clamp: expected ${name} to be a number or null but received ${typeof v}`);
  const lo = min ?? -Infinity, hi = max ?? Infinity;
  // PyTorch's order: the max bound wins when min > max; NaN stays NaN
  return unary('clamp', x, (o, v) => o.set(map(v, (a) => (a !== a ? a : Math.min(Math.max(a, lo), hi)))),
    (g, v) => map(g, (d, i) => (v[i] >= lo && v[i] <= hi ? d : 0)));
}

/** The larger of a and b elementwise, broadcasting; NaN propagates; a tie splits the gradient. @example maximum(x, 0) */
export function maximum(a: Tensor, b: Tensor | number): Tensor {
  return extremeOf('maximum', a, b, true);
}

/** The smaller of a and b elementwise, broadcasting; NaN propagates; a tie splits the gradient. @example minimum(x, y) */
export function minimum(a: Tensor, b: Tensor | number): Tensor {
  return extremeOf('minimum', a, b, false);
}

function extremeOf(op: string, a: Tensor, b: Tensor | number, largest: boolean): Tensor {
  const pick = (p: number, q: number) => (p !== p || q !== q ? NaN : largest ? Math.max(p, q) : Math.min(p, q));
  const share = (p: number, q: number) => (p === q ? 0.5 : (largest ? p > q : p < q) ? 1 : 0); // of the gradient to a
  return binary(op, a, b, pick, null, (g, p, q) => [map(g, (d, i) => d * share(p[i], q[i])), map(g, (d, i) => d * (1 - share(p[i], q[i])))]);
}

/** t's values broadcast to shape: its own array when the shapes agree, else a new one from the allocator. */
function spread(t: Tensor, shape: number[]): Float32Array {
  return sameShape(t.shape, shape) ? t.values : gather(t.values, t.shape, shape);
}

function compare(op: string, a: Tensor | number, b: Tensor | number, f: (p: number, q: number) => boolean): Tensor {
  const x = asTensor(op, a), y = asTensor(op, b);
  const shape = broadcastShape(op, x.shape, y.shape);
  const xv = spread(x, shape), yv = spread(y, shape);
  const out = allocate(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = f(xv[i], yv[i]) ? 1 : 0;
  for (const v of [xv, yv]) if (v !== x.values && v !== y.values) release(v);
  return new Tensor(out, shape);
}

/** a == b elementwise as 1/0 values (no gradient), broadcasting. @example eq(x, 0) */
export const eq = (a: Tensor | number, b: Tensor | number) => compare('eq', a, b, (p, q) => p === q);
/** a != b elementwise as 1/0 values. @example ne(x, 0) */
export const ne = (a: Tensor | number, b: Tensor | number) => compare('ne', a, b, (p, q) => p !== q);
/** a > b elementwise as 1/0 values. @example gt(x, 0) */
export const gt = (a: Tensor | number, b: Tensor | number) => compare('gt', a, b, (p, q) => p > q);
/** a >= b elementwise as 1/0 values. @example ge(x, 0) */
export const ge = (a: Tensor | number, b: Tensor | number) => compare('ge', a, b, (p, q) => p >= q);
/** a < b elementwise as 1/0 values. @example lt(x, 0) */
export const lt = (a: Tensor | number, b: Tensor | number) => compare('lt', a, b, (p, q) => p < q);
/** a <= b elementwise as 1/0 values. @example le(x, 0) */
export const le = (a: Tensor | number, b: Tensor | number) => compare('le', a, b, (p, q) => p <= q);

/**
 * a where condition is nonzero, else b, all three broadcast together; gradients flow to the chosen side.
 * @example where(gt(x, 0), x, mul(x, 0.1)) // a leaky ReLU
 * @throws {RangeError} when the shapes cannot be broadcast together
 */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  checkTensor('where', condition, 'condition');
  const x = asTensor('where', a), y = asTensor('where', b);
  const shape = broadcastShape('where', broadcastShape('where', condition.shape, x.shape), y.shape);
  const c = spread(condition, shape), xv = spread(x, shape), yv = spread(y, shape);
  const out = allocate(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = c[i] !== 0 ? xv[i] : yv[i];
  for (const v of [xv, yv]) if (v !== x.values && v !== y.values) release(v);
  return record('where', out, shape, [x, y], (g) => {
    const ga = x.requiresGrad ? map(g, (d, i) => (c[i] !== 0 ? d : 0)) : null;
    const gb = y.requiresGrad ? map(g, (d, i) => (c[i] !== 0 ? 0 : d)) : null;
    const result = [ga && reduceTo(ga, shape, x.shape), gb && reduceTo(gb, shape, y.shape)];
    for (const v of [ga, gb]) if (v && !result.includes(v)) release(v);
    return result;
  });
}

export interface VarianceOptions {
  /** divide by n - 1 (Bessel's correction, the default) instead of n */
  unbiased?: boolean;
  keepdim?: boolean;
}

/**
 * Variance of all elements, or along dim (unbiased by default, as torch.var).
 * @example variance(x, 0, { unbiased: false })
 */
export function variance(x: Tensor, dim?: number, options: VarianceOptions = {}): Tensor {
  checkTensor('var', x);
  const n = dim === undefined ? x.size : x.shape[normDim('var', dim, x.ndim)];
  const centered = sub(x, mean(x, dim, { keepdim: true }));
  return mul(sum(mul(centered, centered), dim, { keepdim: options.keepdim ?? false }), 1 / (n - (options.unbiased ?? true ? 1 : 0)));
}

/** Standard deviation: the square root of variance(x, dim, options). @example std(x) */
export function std(x: Tensor, dim?: number, options: VarianceOptions = {}): Tensor {
  return sqrt(variance(x, dim, options));
}
