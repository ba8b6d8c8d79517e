// What train.js and ddp-local.js share: the data-parallel training loop, and rank 0's report of
// the per-step global mean losses and the final state dict.
'use strict';
const { writeFileSync } = require('node:fs');
const { distributed, nn } = require('../../dist/cjs/index.js');

/** Trains ddp (wrapping model) on every batch of loader with optimizer, then rank 0 writes { ...extra, losses, state } to out. */
exports.trainAndReport = ({ ddp, model, optimizer, loader, out, extra = {} }) => {
  const lossFn = new nn.CrossEntropyLoss(), losses = [];
  for (const [x, y] of loader) {
    optimizer.zeroGrad();
    const loss = lossFn.forward(ddp.forward(x), y);
    loss.backward();
    optimizer.step();
    const mean = Float32Array.of(loss.item());
    distributed.allReduce(mean, { op: 'avg' });
    losses.push(mean[0]);
  }
  if (distributed.rank() === 0) {
    const state = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, Array.from(t.data)]));
    writeFileSync(out, JSON.stringify({ ...extra, losses, state }));
  }
};
