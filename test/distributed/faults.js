// Faults under mpirun for test/distributed.test.ts: node faults.js <kill|throw|mismatch>.
// kill: rank 1 SIGKILLs itself mid-epoch; throw: rank 1 throws mid-epoch; mismatch: the ranks
// all-reduce arrays of different lengths, and each prints the error it gets.
'use strict';
const { distributed, nn, optim, makeModel, loadMnist, DataLoader } = require('../../dist/cjs/index.js');

const mode = process.argv[2];
const { rank, worldSize } = distributed.init();
if (mode === 'mismatch') {
  try {
    distributed.allReduce(new Float32Array(10 + rank));
    console.log(`rank ${rank}: no error`);
  } catch (e) {
    console.log(`rank ${rank}: ${e.message}`);
  }
  distributed.barrier();
  distributed.destroy();
  return;
}
const net = makeModel('seed'), ddp = new nn.parallel.DistributedDataParallel(net);
const opt = new optim.SGD(net.parameters(), { lr: 0.01 }), lossFn = new nn.CrossEntropyLoss();
const loader = new DataLoader(loadMnist({ train: true, flatten: true }), { batchSize: 32, shuffle: true, seed: 1, rank, worldSize });
let step = 0;
for (;;)
  for (const [x, y] of loader) {
    if (rank === 1 && step === 20) {
      if (mode === 'kill') process.kill(process.pid, 'SIGKILL');
      throw new Error('rank 1 fails on purpose');
    }
    opt.zeroGrad();
    lossFn.forward(ddp.forward(x), y).backward();
    opt.step();
    step++;
  }
