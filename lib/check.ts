/** Argument checks shared by the modules, optimizers and schedulers. */

/**
 * v as a positive integer, or a TypeError (not a number) / RangeError (not a positive integer)
 * naming fn and the argument.
 */
export function checkPositiveInt(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`${fn}: expected ${name} to be a number but received ${typeof v}`);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${fn}: expected ${name} to be a positive integer but received ${v}`);
  return v;
}

/** x as Python prints a float, so printed settings read as PyTorch's (1e-05, 0.1). */
export function pyFloat(x: number): string {
  const a = Math.abs(x);
  if (a === 0 || !Number.isFinite(x) || (a >= 1e-4 && a < 1e16)) return String(x);
  return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
}
