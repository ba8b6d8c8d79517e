/**
 * save/load in the safetensors format: an 8-byte little-endian header length, a JSON header
 * ({ name: { dtype, shape, data_offsets: [begin, end] } }, padded with spaces to 8 bytes), then the
 * raw little-endian data. Files are written atomically (see atomic.ts).
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { sizeOf, Tensor } from '../tensor.js';

const DTYPES: Record<string, { bytes: number; read: (v: DataView, o: number) => number }> = {
  F32: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  F64: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  F16: { bytes: 2, read: (v, o) => half(v.getUint16(o, true)) },
  I64: { bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
  I32: { bytes: 4, read: (v, o) => v.getInt32(o, true) },
  I16: { bytes: 2, read: (v, o) => v.getInt16(o, true) },
  I8: { bytes: 1, read: (v, o) => v.getInt8(o) },
  U8: { bytes: 1, read: (v, o) => v.getUint8(o) },
  BOOL: { bytes: 1, read: (v, o) => v.getUint8(o) },
};

function half(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The keys of a JSON object's text at its top level, in order, repeats kept (JSON.parse keeps only the last). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && ' \t\r\n'.includes(text[k])) k++;
        if (text[k] === ':') keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      }
      i = j;
    } else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
  }
  return keys;
}

/** Integer buffers (PyTorch's num_batches_tracked) are stored as I64, as PyTorch has them. */
const isIntegerKey = (name: string) => name.endsWith('num_batches_tracked');

/**
 * Writes a state dict to path in the safetensors format, atomically, with optional string metadata
 * (the header's __metadata__ map).
 * @example save(model.stateDict(), 'model.safetensors')
 * @throws {TypeError} when a value is not a Tensor
 * @throws {Error} (the file-system error) when the file cannot be written; the old file stays
 */
export function save(stateDict: Record<string, Tensor>, path: string, metadata: Record<string, string> = {}): void {
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw new TypeError(`save: expected metadata ${k} to be a string but received ${typeof v}`);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(stateDict)) {
    if (!(t instanceof Tensor)) throw new TypeError(`save: expected ${name} to be a Tensor but received ${t === null ? 'null' : typeof t}`);
    let blob: Uint8Array;
    if (isIntegerKey(name)) {
      const v = new DataView(new ArrayBuffer(t.size * 8));
      t.values.forEach((x, i) => v.setBigInt64(i * 8, BigInt(Math.round(x)), true));
      blob = new Uint8Array(v.buffer);
    } else {
      const v = new DataView(new ArrayBuffer(t.size * 4));
      t.values.forEach((x, i) => v.setFloat32(i * 4, x, true)); // little-endian on any host
      blob = new Uint8Array(v.buffer);
    }
    header[name] = { dtype: isIntegerKey(name) ? 'I64' : 'F32', shape: t.shape, data_offsets: [offset, offset + blob.length] };
    blobs.push(blob);
    offset += blob.length;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));

  writeFileAtomic(path, [length, json, ...blobs]);
}

/**
 * Reads a safetensors file into a state dict of float32 tensors (integer and float64 values are
 * converted), in the file's order.
 * @example model.loadStateDict(load('model.safetensors'))
 * @throws {RangeError} naming the file when it is truncated or corrupt
 */
export function load(path: string): Record<string, Tensor> {
  return readSafetensors(path).tensors;
}

/** The string metadata of a safetensors file (its header's __metadata__ map). @throws {RangeError} when the file is not valid */
export function loadMetadata(path: string): Record<string, string> {
  return readSafetensors(path).metadata;
}

/** @internal The tensors and metadata of a safetensors file. */
export function readSafetensors(path: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const bytes = readFileSync(path);
  const bad = (why: string): never => {
    throw new RangeError(`load: ${path} is not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) bad(`it has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (headerLength > bytes.length - 8) bad(`the header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const text = bytes.subarray(8, 8 + headerLength).toString('utf8');
  try {
    header = JSON.parse(text);
  } catch (e) {
    return bad(`the header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('the header is not a JSON object');
  const keys = topLevelKeys(text), seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) bad(`the header names ${JSON.stringify(k)} twice`);
    seen.add(k);
  }
  const dataStart = 8 + headerLength, dataLength = bytes.length - dataStart;
  const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart, dataLength);
  const out: Record<string, Tensor> = {};
  const spans: [number, number, string][] = [];
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  if (typeof metadata !== 'object' || Array.isArray(metadata) || !Object.values(metadata).every((v) => typeof v === 'string'))
    bad('__metadata__ is not a map of strings');
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const type = typeof entry?.dtype === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, entry.dtype) ? DTYPES[entry.dtype] : undefined;
    if (!type) bad(`${name} has an unsupported dtype ${JSON.stringify(entry?.dtype)}`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) bad(`${name} has an invalid shape ${JSON.stringify(shape)}`);
    const [begin, end] = Array.isArray(entry.data_offsets) ? entry.data_offsets : [NaN, NaN];
    const count = sizeOf(shape);
    if (!(Number.isInteger(begin) && Number.isInteger(end) && 0 <= begin && begin <= end && end <= dataLength))
      bad(`${name} has data offsets ${JSON.stringify(entry.data_offsets)} outside the ${dataLength} bytes of data`);
    if (end - begin !== count * type!.bytes)
      bad(`${name} has ${end - begin} bytes of data but its shape ${JSON.stringify(shape)} of ${entry.dtype} needs ${count * type!.bytes}`);
    spans.push([begin, end, name]);
  }
  // the tensors tile the data section: in order, no gap, no overlap, nothing left over
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) bad(begin < at ? `${name}'s data (bytes ${begin}-${end}) overlaps the tensor before it (which ends at ${at})` : `${at === 0 ? 'the data starts' : 'there is a gap'} before ${name} (bytes ${at}-${begin} belong to no tensor)`);
    at = end;
  }
  if (at !== dataLength) bad(`the tensors end at byte ${at} of the data but the file holds ${dataLength}`);
  for (const [begin, , name] of spans) {
    const entry = header[name], type = DTYPES[entry.dtype], count = sizeOf(entry.shape);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = type.read(view, begin + i * type.bytes);
    // defined, not assigned: a tensor named __proto__ is a key like any other
    Object.defineProperty(out, name, { value: new Tensor(data, [...entry.shape]), enumerable: true, writable: true, configurable: true });
  }
  return { tensors: out, metadata: { ...metadata } };
}
