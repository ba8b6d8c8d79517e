/**
 * Training for 1,000 steps does not grow the autograd graph: the tape that backward() walks has the
 * same length every step, each graph is released after backward(), and the live heap (after a
 * forced garbage collection, in a child process started with --expose-gc) stays flat.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nn, tensor } from '../lib/index.js';

const root = join(__dirname, '..');
const CHILD = `
const sg = require('./dist/cjs/index.js');
const { tapeLength } = require('./dist/cjs/tensor.js');
const { nn, optim, randn, manualSeed } = sg;
manualSeed(3);
const model = new nn.Sequential(new nn.Linear(20, 64), new nn.BatchNorm1d(64), new nn.ReLU(), new nn.Linear(64, 5));
const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
const lossFn = new nn.CrossEntropyLoss();
const x = randn([32, 20]), y = Int32Array.from({ length: 32 }, (_, i) => i % 5);
const tapes = new Set(), heap = [];
let released = true;
for (let step = 1; step <= 1000; step++) {
  opt.zeroGrad();
  const loss = lossFn.forward(model.forward(x), y);
  tapes.add(tapeLength(loss));
  loss.backward();
  released = released && loss.node.op === 'released';
  opt.step();
  if (step % 100 === 0) { global.gc(); heap.push(process.memoryUsage().heapUsed); }
}
console.log(JSON.stringify({ tapes: [...tapes], heap, released, loss: lossFn.forward(model.forward(x), y).item() }));
`;

describe('the autograd graph does not grow', () => {
  it('1,000 training steps: constant tape, released graphs, flat heap', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', CHILD], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { tapes: number[]; heap: number[]; released: boolean; loss: number };
    expect(out.tapes).toHaveLength(1); // the same graph size at every step
    expect(out.released).toBe(true);
    const growth = out.heap[out.heap.length - 1] - out.heap[1];
    expect(growth, `heap after GC by step: ${out.heap.map((h) => (h / 2 ** 20).toFixed(2)).join(', ')} MiB`).toBeLessThan(1 << 20);
    expect(out.loss).toBeLessThan(0.1); // and it did train
  });
});

describe('BatchNorm fusion for inference', () => {
  it('fuseLinearBnEval and fuseConvBnEval equal the layer followed by BatchNorm in eval mode', () => {
    const lin = new nn.Linear(6, 4), bn = new nn.BatchNorm1d(4);
    const x = tensor(Float32Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.3) * 2), [5, 6]);
    bn.forward(lin.forward(x)); // give the BatchNorm running statistics
    bn.eval();
    const want = bn.forward(lin.forward(x)).data, got = nn.utils.fuseLinearBnEval(lin, bn).forward(x).data;
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));

    const conv = new nn.Conv2d(2, 3, 3, { padding: 1 }), bn2 = new nn.BatchNorm2d(3);
    const img = tensor(Float32Array.from({ length: 2 * 2 * 5 * 5 }, (_, i) => Math.cos(i * 0.7)), [2, 2, 5, 5]);
    bn2.forward(conv.forward(img));
    bn2.eval();
    const want2 = bn2.forward(conv.forward(img)).data, got2 = nn.utils.fuseConvBnEval(conv, bn2).forward(img).data;
    got2.forEach((v, i) => expect(v).toBeCloseTo(want2[i], 5));
    expect(() => nn.utils.fuseLinearBnEval(lin, new nn.BatchNorm1d(5)))
      .toThrow(new RangeError('fuseLinearBnEval: the layer has 4 output channels but the BatchNorm normalises 5'));
  });
});
