#!/usr/bin/env node
// Random bad calls on every kernel of one backend, each array inside guard regions: every call must
// return or throw a TypeError/RangeError that names the kernel, write nothing outside its arrays,
// and the process must not crash. Run as a child (a crash is the parent's finding):
//   node scripts/fuzz-kernels.js --backend native|ts --calls N --seed S [--log FILE]
// Prints a JSON summary; exits 1 on a violation (the call is in the summary, and in FILE as each
// call is made, so a crash leaves the call that caused it).
'use strict';
const { appendFileSync, writeFileSync } = require('node:fs');
const { KERNELS } = require('../dist/cjs/backend/schema.js');
const { evaluate, parse } = require('../dist/cjs/backend/expr.js');

const options = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((p) => p.trim().split(/\s+/)));
const backendName = options.backend ?? 'native', calls = Number(options.calls ?? 2000), log = options.log;
const backend = backendName === 'ts' ? require('../dist/cjs/backend/ts/index.js').tsBackend : require('../dist/cjs/backend/native.js').loadNative();

let state = Number(options.seed ?? 1) >>> 0;
const random = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (items) => items[Math.floor(random() * items.length)];

const GUARD = 16;
const OURS = [Float32Array, Int32Array, Uint8Array];
const isOurs = (v) => ArrayBuffer.isView(v) && OURS.includes(v.constructor);
const SENTINEL = { Float32Array: 1234.5, Int32Array: 0x5a5a5a5a, Uint8Array: 0xa5 };
const guards = []; // [whole, view] of every array made for the current call

/** An array of n elements inside guard regions of SENTINEL, its elements random (indices small). */
function guarded(Type, n, shared = false) {
  const bytes = (n + 2 * GUARD) * Type.BYTES_PER_ELEMENT;
  const whole = new Type(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes)).fill(SENTINEL[Type.name]);
  const view = whole.subarray(GUARD, GUARD + n);
  for (let i = 0; i < n; i++)
    view[i] = Type === Float32Array ? random() * 4 - 2 : Type === Int32Array ? Math.floor(random() * 10) - 1 : Math.floor(random() * 256);
  guards.push([whole, view]);
  return view;
}

/** A valid call of spec with random small sizes (0-6), its arrays guarded. */
function validCall(spec) {
  const values = new Map(), example = spec.example ?? {};
  const get = (n) => {
    if (!values.has(n)) values.set(n, evaluate(parse(spec.derive[n]), get));
    return values.get(n);
  };
  for (const a of spec.args) {
    if (a.kind === 'size') values.set(a.name, random() < 0.5 && example[a.name] !== undefined ? example[a.name] : Math.max(a.min ?? 0, Math.floor(random() * 7)));
    else if (a.kind === 'num') values.set(a.name, example[a.name] ?? random());
    else if (a.kind === 'flag') values.set(a.name, random() < 0.5);
  }
  return spec.args.map((a) => {
    if (a.kind === 'size' || a.kind === 'num' || a.kind === 'flag') return values.get(a.name);
    let n = a.len ? evaluate(parse(a.len), get) : example[`len(${a.name})`] ?? 5;
    if (!(n >= 0 && n <= 1 << 16)) n = 5; // sizes too big for a valid call: it becomes a bad one
    const Type = a.kind === 'i32' ? Int32Array : a.kind === 'u8' ? Uint8Array : Float32Array;
    const v = guarded(Type, n);
    values.set(a.name, v);
    return v;
  });
}

const BAD_VALUES = [0, 1, 3, 7, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 31 - 1, 2 ** 31, 2 ** 53, '3', null, undefined, true, {}, [], 1e-300];

/** One to three of: a bad size or scalar, an array of another length or kind, a shared or overlapping array, a wrong count. */
function mutate(spec, args) {
  const out = [...args];
  for (let k = 1 + Math.floor(random() * 3); k > 0; k--) {
    const i = Math.floor(random() * out.length), a = spec.args[i], r = random();
    if (r < 0.35) out[i] = pick(BAD_VALUES);
    else if (r < 0.55 && isOurs(out[i])) out[i] = guarded(out[i].constructor, Math.max(0, out[i].length + pick([-3, -1, 1, 5, -out[i].length])));
    else if (r < 0.65) out[i] = pick([new Float64Array(4), new Int32Array(4), new Uint8Array(4), new Float32Array(4), [1, 2, 3], 'abc',
      new Proxy(guarded(Float32Array, 4), {}), Object.create(Float32Array.prototype), new DataView(new ArrayBuffer(16))]);
    else if (r < 0.75 && isOurs(out[i])) out[i] = guarded(out[i].constructor, out[i].length, true);
    else if (r < 0.87) {
      // an array that shares memory with another argument's
      const j = out.findIndex((v, m) => m !== i && ArrayBuffer.isView(v) && v.length > 0);
      if (j >= 0 && a && (a.kind === 'f32' || a.kind === 'f32?' || a.kind === 'i32')) {
        const other = out[j], Type = a.kind === 'i32' ? Int32Array : Float32Array;
        const length = Math.floor(other.byteLength / Type.BYTES_PER_ELEMENT);
        out[i] = new Type(other.buffer, other.byteOffset, length);
      }
    } else if (r < 0.93) out.pop();
    else out.push(pick(BAD_VALUES));
  }
  return out;
}

const show = (v) => (ArrayBuffer.isView(v) ? `${v.constructor.name}(${v.length}${v.buffer instanceof SharedArrayBuffer ? ', shared' : ''})` : typeof v === 'number' || v === null || v === undefined ? String(v) : typeof v);
let returned = 0, rejected = 0;
const names = Object.keys(KERNELS);
if (log) writeFileSync(log, '');
for (let c = 0; c < calls; c++) {
  const name = names[c % names.length], spec = KERNELS[name];
  guards.length = 0;
  const args = random() < 0.15 ? validCall(spec) : mutate(spec, validCall(spec));
  const text = `${backendName} ${name}(${args.map(show).join(', ')})`;
  if (log) appendFileSync(log, text + '\n');
  let problem = null;
  try {
    backend[name](...args);
    returned++;
  } catch (e) {
    if (!(e instanceof TypeError || e instanceof RangeError)) problem = `threw ${e?.constructor?.name}: ${e?.message}`;
    else if (!String(e.message).startsWith(`${name}: `)) problem = `threw an error that does not name the kernel: ${e.message}`;
    else rejected++;
  }
  if (!problem)
    for (const [whole, view] of guards) {
      const at = view.byteOffset / view.BYTES_PER_ELEMENT, end = at + view.length, s = SENTINEL[whole.constructor.name];
      for (let i = 0; i < whole.length; i++)
        if ((i < at || i >= end) && !Object.is(whole[i], s)) {
          problem = `wrote outside an array (element ${i - at} of ${show(view)})`;
          break;
        }
      if (problem) break;
    }
  if (problem) {
    console.log(JSON.stringify({ ok: false, call: text, problem, returned, rejected }));
    process.exit(1);
  }
}
console.log(JSON.stringify({ ok: true, calls, returned, rejected }));
