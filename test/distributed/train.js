// A data-parallel training run for test/distributed.test.ts, under mpirun or alone (a world of one):
// node train.js <seed|cnn> <sync|local> <steps> <out.json>. Rank 0 writes the per-step global
// losses and the final state dict.
'use strict';
const { writeFileSync } = require('node:fs');
const sg = require('../../dist/cjs/index.js');
const { distributed, nn, optim, makeModel, manualSeed, loadMnist, DataLoader } = sg;

const [model, norm, stepsArg, out] = process.argv.slice(2);
const steps = Number(stepsArg), globalBatch = 64;
const { rank, worldSize } = distributed.init();
manualSeed(7);
let net = makeModel(model);
if (norm === 'sync') net = nn.SyncBatchNorm.convert(net);
const ddp = new nn.parallel.DistributedDataParallel(net, { bucketCapMB: 0.5 });
// the cnn's max-pool and ReLU kinks turn the split batch's different rounding into different
// choices at a high learning rate (see test/distributed.test.ts)
const opt = new optim.SGD(net.parameters(), { lr: model === 'cnn' ? 0.002 : 0.05, momentum: 0.9 });
const data = loadMnist({ train: true, flatten: model !== 'cnn', limit: globalBatch * steps });
const loader = new DataLoader(data, { batchSize: globalBatch / worldSize, shuffle: true, seed: 3, rank, worldSize });
const lossFn = new nn.CrossEntropyLoss(), losses = [];
for (const [x, y] of loader) {
  opt.zeroGrad();
  const loss = lossFn.forward(ddp.forward(x), y);
  loss.backward();
  opt.step();
  const mean = Float32Array.of(loss.item());
  distributed.allReduce(mean, { op: 'avg' });
  losses.push(mean[0]);
}
if (rank === 0) {
  const state = Object.fromEntries(Object.entries(net.stateDict()).map(([k, t]) => [k, Array.from(t.data)]));
  writeFileSync(out, JSON.stringify({ worldSize, backend: sg.backendInfo().name, losses, state }));
}
distributed.destroy();
