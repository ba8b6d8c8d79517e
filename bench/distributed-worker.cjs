// One rank of bench/distributed.mjs, under mpirun: `allreduce BYTES...` prints "BYTES SECONDS" as
// bench/allreduce.c does; `train MODEL STEPS [sync]` prints the samples/s of STEPS timed steps at
// global batch 64, one kernel thread per rank; with `alone` the ranks train their shards without
// communicating (the bound the hardware sets for the two processes side by side).
'use strict';
const sg = require('../dist/cjs/index.js');
const { distributed, nn, optim, makeModel, manualSeed, loadMnist, DataLoader, backend } = sg;

const [mode, ...args] = process.argv.slice(2);
const { rank, worldSize } = distributed.init();
if (mode === 'allreduce') {
  for (const bytes of args.map(Number)) {
    const x = new Float32Array(bytes / 4).fill(1), reps = bytes > 4 << 20 ? 5 : 100;
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      distributed.barrier();
      const t = process.hrtime.bigint();
      for (let i = 0; i < reps; i++) distributed.allReduce(x);
      best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9 / reps);
    }
    if (rank === 0) console.log(`${bytes} ${best}`);
  }
} else {
  const [model, stepsArg, sync] = args, steps = Number(stepsArg), warm = 10, globalBatch = 64;
  backend().setThreads(1);
  manualSeed(1);
  let net = makeModel(model);
  if (sync === 'sync') net = nn.SyncBatchNorm.convert(net);
  const trained = worldSize > 1 && sync !== 'alone' ? new nn.parallel.DistributedDataParallel(net) : net;
  const opt = new optim.SGD(net.parameters(), { lr: 0.01, momentum: 0.9 }), lossFn = new nn.CrossEntropyLoss();
  const loader = new DataLoader(loadMnist({ train: true, flatten: model !== 'cnn' }), { batchSize: globalBatch / worldSize, shuffle: true, seed: 1, rank, worldSize });
  let n = 0, t0 = 0n;
  for (const [x, y] of loader) {
    if (n === warm) {
      distributed.barrier();
      t0 = process.hrtime.bigint();
    }
    opt.zeroGrad();
    lossFn.forward(trained.forward(x), y).backward();
    opt.step();
    if (++n === warm + steps) break;
  }
  distributed.barrier();
  if (rank === 0) console.log(`${(steps * globalBatch) / (Number(process.hrtime.bigint() - t0) / 1e9)}`);
}
distributed.destroy();
