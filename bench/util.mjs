// What bench/index.mjs and bench/api.mjs both need: inputs, timing and the table they print.
// (bench/ab.mjs's child runs inside another checkout, which may not have this file, so it keeps its own.)

/** n values in [-0.5, 0.5) from a fixed linear congruential sequence */
export function random(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** Best time per call, in seconds: calls fn until minSeconds have passed (at least `min` calls). */
export function time(fn, minSeconds = 0.4, min = 3) {
  fn(); // warm up (packing buffers, pool threads, JIT)
  let best = Infinity, total = 0, calls = 0;
  while (calls < min || total < minSeconds) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, dt);
    total += dt;
    calls++;
  }
  return best;
}

/** Throws unless every |a - b| is within tol of b's largest magnitude. */
export function check(what, a, b, tol) {
  let scale = 0, worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (scale + 1e-30));
  if (!(worst <= tol)) throw new Error(`validation failed for ${what}: error ${worst} > ${tol}`);
}

/**
 * The STREAM triad a = b + 3c over three arrays of footprint/3 bytes in all, made by makeArray(n)
 * (plain Float32Arrays unless given) and checked once: { call, bytes }, the bytes one call moves.
 */
export function triadWorkload(backend, footprint, makeArray = (n) => new Float32Array(n)) {
  const n = Math.max(1024, Math.round(footprint / 12));
  const a = makeArray(n), b = makeArray(n), c = makeArray(n);
  b.set(random(n, 1));
  c.set(random(n, 2));
  const call = () => backend.triad(a, b, c, 3);
  call();
  check('triad', a.subarray(0, 1024), Float32Array.from(b.subarray(0, 1024), (v, i) => v + 3 * c[i]), 1e-6);
  return { call, bytes: 12 * n };
}

/** STREAM triad GB/s (12 bytes per element) with three arrays of footprint/3 bytes in all, on the backend's threads */
export function triad(backend, footprint) {
  const { call, bytes } = triadWorkload(backend, footprint);
  return bytes / time(call, 0.3) / 1e9;
}

export const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
export const fixed = (v, d = 1) => (v === undefined || v === null || Number.isNaN(v) ? '-' : v.toFixed(d));
export const ms = (s) => (s === undefined ? '-' : s >= 1e-3 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(0)} us`);

/** Prints rows under a header: the first column left-aligned, the others right-aligned, in the given widths. */
export function table(header, rows, widths = header.map((h, i) => Math.max(...[h, ...rows.map((r) => r[i])].map((c) => String(c).length)) + 2)) {
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[0]) : String(c).padStart(widths[i]))).join('');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
