// A data-parallel training run for test/distributed.test.ts, under mpirun or alone (a world of one):
// node train.js <seed|cnn> <sync|local> <steps> <out.json>. Rank 0 writes the per-step global
// losses and the final state dict.
'use strict';
const sg = require('../../dist/cjs/index.js');
const { distributed, nn, optim, makeModel, manualSeed, loadMnist, DataLoader } = sg;
const { trainAndReport } = require('./steps.js');

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
trainAndReport({ ddp, model: net, optimizer: opt, loader, out, extra: { worldSize, backend: sg.backendInfo().name } });
distributed.destroy();
