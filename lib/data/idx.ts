/**
 * The IDX format (LeCun's MNIST files): magic 0x0000 | type code | number of dimensions, then each
 * dimension as a big-endian uint32, then the values, big-endian, row-major.
 */
import { readFileSync } from 'node:fs';

const TYPES: Record<number, { name: string; bytes: number; read: (b: Buffer, o: number) => number }> = {
  0x08: { name: 'unsigned byte', bytes: 1, read: (b, o) => b.readUInt8(o) },
  0x09: { name: 'signed byte', bytes: 1, read: (b, o) => b.readInt8(o) },
  0x0b: { name: 'short', bytes: 2, read: (b, o) => b.readInt16BE(o) },
  0x0c: { name: 'int', bytes: 4, read: (b, o) => b.readInt32BE(o) },
  0x0d: { name: 'float', bytes: 4, read: (b, o) => b.readFloatBE(o) },
  0x0e: { name: 'double', bytes: 8, read: (b, o) => b.readDoubleBE(o) },
};

export interface IdxArray {
  shape: number[];
  /** 0x08 data stays as bytes (no copy); other types are converted to float64 */
  data: Uint8Array | Float64Array;
  typeCode: number;
}

/**
 * Reads an IDX file.
 * @example const { shape, data } = readIdx('train-images-idx3-ubyte'); // shape [60000, 28, 28]
 * @throws {RangeError} naming the file when the magic number, the type code or the length is wrong
 */
export function readIdx(path: string): IdxArray {
  const bytes = readFileSync(path);
  const bad = (why: string): never => {
    throw new RangeError(`readIdx: ${path} is not a valid IDX file: ${why}`);
  };
  if (bytes.length < 4) bad(`it has ${bytes.length} bytes, fewer than the 4-byte magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) bad(`the magic number starts with 0x${bytes.subarray(0, 2).toString('hex')}, not 0x0000`);
  const type = TYPES[bytes[2]];
  if (!type) bad(`unknown type code 0x${bytes[2].toString(16).padStart(2, '0')}`);
  const ndim = bytes[3];
  const headerLength = 4 + 4 * ndim;
  if (bytes.length < headerLength) bad(`it has ${bytes.length} bytes, fewer than the ${headerLength}-byte header for ${ndim} dimensions`);
  const shape = Array.from({ length: ndim }, (_, i) => bytes.readUInt32BE(4 + 4 * i));
  const count = shape.reduce((p, d) => p * d, 1);
  const expected = headerLength + count * type.bytes;
  if (bytes.length !== expected)
    bad(`dimensions [${shape.join(', ')}] of ${type.name} need ${expected} bytes but the file has ${bytes.length}`);
  if (bytes[2] === 0x08) return { shape, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLength, count), typeCode: 0x08 };
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = type.read(bytes, headerLength + i * type.bytes);
  return { shape, data, typeCode: bytes[2] };
}
