// Gradient accumulation under mpirun -np 2, for test/distributed.test.ts: two micro-batches, the
// first inside ddp.noSync, must leave in .grad the rank-average of each rank's summed gradients.
// Prints the largest difference from that average, computed with an unwrapped copy.
'use strict';
const { distributed, nn, randn, manualSeed } = require('../../dist/cjs/index.js');

const { rank } = distributed.init();
manualSeed(1);
const model = new nn.Sequential(new nn.Linear(6, 5), new nn.Tanh(), new nn.Linear(5, 3));
const copy = new nn.Sequential(new nn.Linear(6, 5), new nn.Tanh(), new nn.Linear(5, 3));
copy.loadStateDict(model.stateDict());
const ddp = new nn.parallel.DistributedDataParallel(model, { bucketCapMB: 1e-4 }); // a bucket per parameter
manualSeed(100 + rank); // each rank its own data
const [x1, x2] = [randn([4, 6]), randn([4, 6])];
const lossOf = (m, x) => m.forward(x).square().mean();
ddp.noSync(() => lossOf(ddp, x1).backward());
const local = model.parameters().map((p) => Array.from(p.grad.data)); // not averaged yet
lossOf(ddp, x2).backward();
lossOf(copy, x1).backward();
// inside noSync, the gradients stayed this rank's own
const keptLocal = copy.parameters().every((p, i) => local[i].every((v, j) => v === p.grad.data[j]));
lossOf(copy, x2).backward();
let worst = 0;
copy.parameters().forEach((p, i) => {
  const expected = p.grad.data.slice();
  distributed.allReduce(expected, { op: 'avg' });
  const got = model.parameters()[i].grad.data;
  expected.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - got[j]))));
});
if (rank === 0) console.log(JSON.stringify({ worst, keptLocal }));
distributed.destroy();
