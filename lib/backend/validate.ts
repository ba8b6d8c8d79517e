/**
 * The schema's argument checks (schema.ts): plan() orders each kernel's checks once, checked()
 * runs them for the TypeScript fallback, and scripts/gen-binding.js writes the same plan as C++ for
 * the native binding. TypeError for the wrong kind, RangeError for the wrong size, the same text
 * from both backends, e.g.
 *   sgemm: expected A to be a Float32Array but received number
 *   sgemm: expected A to have at least 12 elements but received 10
 */
import { namesIn, parse, type Expr } from './expr.js';
import type { ArgSpec, KernelSpec } from './schema.js';

export const MAX_SIZE = 2147483647;

/** The JavaScript name of a value's kind: number, null, Float64Array, Array, object, ... */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v instanceof DataView ? 'object' : v.constructor.name;
  if (Array.isArray(v)) return 'Array';
  if (v instanceof ArrayBuffer) return 'ArrayBuffer';
  return typeof v;
}

/** A message: literal text, and the expressions of its ${...} parts. */
export type Template = (string | Expr)[];

/**
 * One step of a kernel's checks. Every name a step reads is defined (an argument checked for its
 * kind, or a derived size computed) by an earlier step.
 */
export type Step =
  | { do: 'arg'; arg: ArgSpec; index: number }
  | { do: 'derive'; name: string; expr: Expr }
  | { do: 'check'; fail: Expr; error: 'TypeError' | 'RangeError'; message: Template }
  | { do: 'length'; arg: ArgSpec; len: Expr }
  | { do: 'overlap'; out: string; input: string }
  | { do: 'each'; array: string; count: Expr; fail: Expr; message: Template };

export const isArray = (a: ArgSpec) => a.kind === 'f32' || a.kind === 'f32?' || a.kind === 'i32' || a.kind === 'u8';

/**
 * The order of a kernel's checks: the scalars in argument order, `checks`, the arrays in argument
 * order (kind, then length), `noOverlap`, `valueChecks`; each name defined before its first use.
 */
export function plan(fn: string, spec: KernelSpec): Step[] {
  const steps: Step[] = [], defined = new Set(['i', 'v']); // i, v: the element loop of `each`
  const args = new Map(spec.args.map((a, index) => [a.name, { arg: a, index }]));
  const need = (name: string): void => {
    if (defined.has(name)) return;
    defined.add(name);
    const a = args.get(name);
    if (a) {
      steps.push({ do: 'arg', ...a });
      return;
    }
    const text = spec.derive?.[name];
    if (text === undefined) throw new Error(`${fn}: the schema names ${name}, which is neither an argument nor derived`);
    const expr = parse(text);
    namesIn(expr).forEach(need);
    steps.push({ do: 'derive', name, expr });
  };
  const read = (text: string) => {
    const e = parse(text);
    namesIn(e).forEach(need);
    return e;
  };
  const message = (text: string): Template => text.split(/\$\{([^}]*)\}/).map((part, k) => (k % 2 ? read(part) : part));
  const check = (c: { fail: string; error: 'TypeError' | 'RangeError'; message: string }) => {
    const fail = read(c.fail);
    steps.push({ do: 'check', fail, error: c.error, message: message(c.message) });
  };
  for (const a of spec.args) if (!isArray(a)) need(a.name);
  for (const c of spec.checks ?? []) check(c);
  for (const a of spec.args) {
    if (!isArray(a)) continue;
    need(a.name);
    if (a.len) steps.push({ do: 'length', arg: a, len: read(a.len) });
  }
  for (const [out, input] of spec.noOverlap ?? []) steps.push({ do: 'overlap', out, input });
  for (const c of spec.valueChecks ?? []) {
    if (!('each' in c)) check(c);
    else {
      const count = read(c.count), fail = read(c.fail);
      need(c.each);
      steps.push({ do: 'each', array: c.each, count, fail, message: message(c.message) });
    }
  }
  for (const name of Object.keys(spec.derive ?? {})) need(name); // every derived size, for the implementation
  return steps;
}

/** The JavaScript of an expression (expr.ts), reading names as local variables. */
function js(e: Expr): string {
  switch (e.op) {
    case 'num': return String(e.value);
    case 'name': return e.name;
    case 'unary': return `${e.operator}${js(e.arg)}`;
    case 'cond': return `(${js(e.test)} ? ${js(e.then)} : ${js(e.else)})`;
    case 'binary':
      if (e.operator === '/') return `Math.floor(${js(e.left)} / ${js(e.right)})`;
      return `(${js(e.left)} ${e.operator === '==' ? '===' : e.operator === '!=' ? '!==' : e.operator} ${js(e.right)})`;
    case 'call': {
      const arg = e.args[0];
      if (e.fn === 'len') return `${(arg as { name: string }).name}.length`;
      if (e.fn === 'isNull') return `(${(arg as { name: string }).name} === null)`;
      return `${e.fn === 'max' || e.fn === 'min' ? `Math.${e.fn}` : `h.${e.fn}`}(${e.args.map(js).join(', ')})`;
    }
  }
}

/** What the compiled checks call. */
const helpers = {
  describe,
  extent: (rows: number, cols: number, ld: number) => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols),
  dims: (N: number, C: number, S: number) => `[${N}, ${C}${S !== 1 ? `, ${S}` : ''}]`,
  overlaps: (a: ArrayBufferView | null, b: ArrayBufferView | null) => a !== null && b !== null && a.buffer === b.buffer &&
    a.byteLength > 0 && b.byteLength > 0 && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength,
  // an instance of the type itself, not an object merely inheriting from its prototype
  is: (v: unknown, type: typeof Float32Array | typeof Int32Array | typeof Uint8Array) => v instanceof type && ArrayBuffer.isView(v),
  types: { f32: Float32Array, 'f32?': Float32Array, i32: Int32Array, u8: Uint8Array },
};

/** The plan of fn's checks as the source of a JavaScript function (argv, h, run) => run({ ...checked }). */
function checksSource(fn: string, spec: KernelSpec, steps: Step[]): string {
  const fail = (error: string, message: string) => `throw new ${error}(${JSON.stringify(`${fn}: `)} + ${message});`;
  const text = (t: Template) => t.map((p) => (typeof p === 'string' ? JSON.stringify(p) : `String(${js(p)})`)).join(' + ') || '""';
  const lines = [`if (argv.length !== ${spec.args.length}) ${fail('TypeError', `"expected ${spec.args.length} arguments but received " + argv.length`)}`];
  for (const s of steps) {
    if (s.do === 'arg') {
      const n = s.arg.name, expected = JSON.stringify(`expected ${n} to be `), got = `" but received " + h.describe(${n})`;
      lines.push(`const ${n} = argv[${s.index}];`);
      if (s.arg.kind === 'size') {
        const lo = s.arg.min ?? 0;
        lines.push(`if (typeof ${n} !== "number") ${fail('TypeError', `${expected} + "a number" + ${got}`)}`,
          `if (!(${n} >= ${lo} && ${n} <= ${MAX_SIZE} && Number.isInteger(${n}))) ${fail('RangeError',
            `${expected} + "an integer from ${lo} to ${MAX_SIZE} but received " + String(${n})`)}`);
      } else if (s.arg.kind === 'num') {
        lines.push(`if (typeof ${n} !== "number") ${fail('TypeError', `${expected} + "a number" + ${got}`)}`,
          `if (!Number.isFinite(${n})) ${fail('RangeError', `${expected} + "a finite number but received " + String(${n})`)}`);
      } else if (s.arg.kind === 'flag') {
        lines.push(`if (typeof ${n} !== "boolean") ${fail('TypeError', `${expected} + "a boolean" + ${got}`)}`);
      } else {
        const nullable = s.arg.kind === 'f32?', type = helpers.types[s.arg.kind].name;
        lines.push(`if (${nullable ? `${n} !== null && ` : ''}!h.is(${n}, h.types[${JSON.stringify(s.arg.kind)}])) ${fail('TypeError',
          `${expected} + "a ${type}${nullable ? ' or null' : ''}" + ${got}`)}`);
      }
    } else if (s.do === 'derive') lines.push(`const ${s.name} = ${js(s.expr)};`);
    else if (s.do === 'check') lines.push(`if (${js(s.fail)}) ${fail(s.error, text(s.message))}`);
    else if (s.do === 'length') {
      const n = s.arg.name, want = `want_${n}`;
      lines.push(`const ${want} = ${js(s.len)};`, `if (${s.arg.kind === 'f32?' ? `${n} !== null && ` : ''}${n}.length ${s.arg.atLeast ? '<' : '!=='} ${want}) ${fail('RangeError',
        s.arg.atLeast ? `"expected ${n} to have at least " + ${want} + " elements but received " + ${n}.length`
          : `"expected ${n} to have length " + ${want} + " but received " + ${n}.length`)}`);
    } else if (s.do === 'overlap') lines.push(`if (h.overlaps(${s.out}, ${s.input})) ${fail('RangeError', JSON.stringify(`${s.out} must not overlap ${s.input}`))}`);
    else lines.push(`for (let i = 0, count = ${js(s.count)}; i < count; i++) {`, `  const v = ${s.array}[i];`,
      `  if (${js(s.fail)}) ${fail('RangeError', text(s.message))}`, '}');
  }
  const named = [...spec.args.map((a) => a.name), ...Object.keys(spec.derive ?? {})];
  lines.push(`return run({ ${named.join(', ')} });`);
  return lines.join('\n');
}

/**
 * fn's schema checks around its implementation: the returned function checks its arguments in the
 * plan's order, then calls run with them by name (and the derived sizes). The checks are compiled
 * to one JavaScript function, which V8 runs as fast as checks written out by hand.
 */
export function checked<R>(fn: string, spec: KernelSpec, run: (v: never) => R): (...args: unknown[]) => R {
  const body = checksSource(fn, spec, plan(fn, spec));
  const compiled = new Function('argv', 'h', 'run', body) as (argv: unknown[], h: typeof helpers, run: (v: never) => R) => R;
  return (...argv: unknown[]) => compiled(argv, helpers, run);
}
