/**
 * How tensors print: PyTorch's layout (torch/_tensor_str.py) with its number formats, summarised
 * past 1000 values to the first and last three entries of each dimension, with the shape and the
 * autograd state.
 */
import type { Tensor } from './tensor.js';

const THRESHOLD = 1000, EDGE = 3, LINE_WIDTH = 80;

/**
 * One format for every value shown, as PyTorch chooses it from the nonzero finite values: integers
 * as '3.', else 4 decimals, or scientific when they span more than 1000x (or pass 1e8, or go under
 * 1e-4); padded to the widest of them (nan and inf are not counted).
 */
function formatter(values: number[]): (v: number) => string {
  const sizes = values.filter((v) => Number.isFinite(v) && v !== 0).map(Math.abs);
  const lo = sizes.length ? Math.min(...sizes) : 1, hi = sizes.length ? Math.max(...sizes) : 1;
  const integers = values.every((v) => !Number.isFinite(v) || Number.isInteger(v));
  const scientific = hi / lo > 1000 || hi > 1e8 || (!integers && lo < 1e-4);
  const body = scientific ? sci : integers ? (v: number) => `${v.toFixed(0)}.` : (v: number) => v.toFixed(4);
  const text = (v: number) => (v !== v ? 'nan' : !Number.isFinite(v) ? (v > 0 ? 'inf' : '-inf') : body(Object.is(v, -0) ? 0 : v));
  const width = Math.max(0, ...values.filter((v) => Number.isFinite(v) && v !== 0).map((v) => text(v).length));
  return (v) => text(v).padStart(width);
}

const sci = (v: number) => v.toExponential(4).replace(/e([+-])(\d)$/, 'e$10$2');

/** The values shown: all, or the first and last EDGE along each dimension when summarised. */
function shown(t: Tensor, summarize: boolean): number[] {
  const out: number[] = [];
  const walk = (dim: number, offset: number, stride: number[]): void => {
    if (dim === t.shape.length) return void out.push(t.values[offset]);
    for (const i of indices(t.shape[dim], summarize)) if (i >= 0) walk(dim + 1, offset + i * stride[dim], stride);
  };
  walk(0, 0, strides(t.shape));
  return out;
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Indices of a dimension of size n to show; -1 marks the '...' gap. */
function indices(n: number, summarize: boolean): number[] {
  if (!summarize || n <= 2 * EDGE) return Array.from({ length: n }, (_, i) => i);
  return [...Array.from({ length: EDGE }, (_, i) => i), -1, ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)];
}

function body(t: Tensor, indent: number): string {
  const summarize = t.size > THRESHOLD;
  const fmt = formatter(shown(t, summarize));
  if (t.ndim === 0) return fmt(t.values[0]).trim();
  const stride = strides(t.shape);
  const block = (dim: number, offset: number, at: number): string => {
    const ids = indices(t.shape[dim], summarize);
    if (dim === t.ndim - 1) {
      const items = ids.map((i) => (i < 0 ? ' ...' : fmt(t.values[offset + i])));
      // wrap rows to the line width as PyTorch does
      const perLine = Math.max(1, Math.floor((LINE_WIDTH - at) / (fmt(0).length + 2)));
      const lines: string[] = [];
      for (let i = 0; i < items.length; i += perLine) lines.push(items.slice(i, i + perLine).join(', '));
      return `[${lines.join(',\n' + ' '.repeat(at + 1))}]`;
    }
    const parts = ids.map((i) => (i < 0 ? '...' : block(dim + 1, offset + i * stride[dim], at + 1)));
    const gap = ',' + '\n'.repeat(t.ndim - dim - 1) + ' '.repeat(at + 1);
    return `[${parts.join(gap)}]`;
  };
  return block(0, 0, indent);
}

/**
 * The printed form of a tensor.
 * @example String(tensor([[1, 2], [3, 4]]))
 * // 'tensor([[1., 2.],\n        [3., 4.]], shape=[2, 2])'
 */
export function formatTensor(t: Tensor): string {
  const prefix = 'tensor(';
  const suffix: string[] = [];
  if (t.ndim > 0) suffix.push(`shape=[${t.shape.join(', ')}]`);
  if (t.node) suffix.push(`gradFn=<${t.node.op[0].toUpperCase()}${t.node.op.slice(1)}Backward>`);
  else if (t.requiresGrad) suffix.push('requiresGrad=true');
  const values = t.size === 0 ? '[]' : body(t, prefix.length);
  return `${prefix}${[values, ...suffix].join(', ')})`;
}
