// The twin of test/fixtures/make_ddp_fixtures.py under mpirun -np 2: plain BatchNorm under
// DistributedDataParallel (each rank's own statistics), from PyTorch's initial weights and data.
// node ddp-local.js <out.json>; rank 0 writes the per-step global losses and the final state dict.
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { distributed, nn, optim, tensor, DataLoader, TensorDataset } = require('../../dist/cjs/index.js');
const { trainAndReport } = require('./steps.js');

const f = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'ddp.json'), 'utf8'));
const { rank, worldSize } = distributed.init();
const model = new nn.Sequential(new nn.Linear(20, 32), new nn.BatchNorm1d(32), new nn.ReLU(), new nn.Linear(32, 4));
const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
model.loadStateDict(Object.fromEntries(Object.entries(f.initial).map(([k, v]) => [k, tensor(Float32Array.from(v), shapes[k])])));
const ddp = new nn.parallel.DistributedDataParallel(model);
const opt = new optim.SGD(model.parameters(), { lr: f.lr, momentum: f.momentum });
const data = new TensorDataset(tensor(Float32Array.from(f.x), [f.y.length, 20]), Int32Array.from(f.y));
trainAndReport({ ddp, model, optimizer: opt, loader: new DataLoader(data, { batchSize: f.perRank, rank, worldSize }), out: process.argv[2] });
distributed.destroy();
