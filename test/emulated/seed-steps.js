// The seed model trained as `stablegrad train` trains it (seed 0, shuffled MNIST, batch 64, SGD lr
// 0.01) for a number of steps: seedLosses(steps) -> { isa, losses }; run as a script, prints that
// as JSON (node test/emulated/seed-steps.js [steps]). test/emulated/seed.test.ts compares an
// emulated CPU's losses with the host's.
'use strict';
const sg = require('../../dist/cjs/index.js');

exports.seedLosses = (steps) => {
  sg.manualSeed(0);
  const model = sg.makeModel('seed');
  const optimizer = new sg.optim.SGD(model.parameters(), { lr: 0.01 });
  const train = new sg.DataLoader(sg.loadMnist({ train: true, flatten: true }), { batchSize: 64, shuffle: true, seed: 0 });
  const losses = [];
  sg.fit(model, { train, optimizer, loss: new sg.nn.CrossEntropyLoss(), epochs: 1, maxSteps: steps, onStep: (r) => losses.push(r.loss) });
  return { isa: sg.backendInfo().isa, losses };
};

if (require.main === module) console.log(JSON.stringify(exports.seedLosses(Number(process.argv[2] || 200))));
