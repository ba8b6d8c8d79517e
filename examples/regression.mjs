// A training script as a PyTorch user writes it: its twin, line for line, is regression.py.
// A custom module with attribute assignment, slicing and cat, regression with fit, a checkpoint
// and a resumed run, printing. Run: node examples/regression.mjs
import sg from 'stablegrad';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { nn, optim, cat, manualSeed, randn, DataLoader, TensorDataset, fit, evaluate, saveCheckpoint, loadCheckpoint } = sg;

manualSeed(0);
// y = x0^2 - 2 x1 + x1 x2, from 2,048 samples of 3 features
const x = randn([2048, 3]);
const [x0, x1, x2] = x.split(1, 1);
const y = x0.square().sub(x1.mul(2)).add(x1.mul(x2)).detach();
const [trainX, testX] = x.split([1792, 256]);
const [trainY, testY] = y.split([1792, 256]);

class Net extends nn.Module {
  constructor(hidden) {
    super();
    this.body = new nn.Sequential(new nn.Linear(3, hidden), new nn.BatchNorm1d(hidden), new nn.ReLU());
    this.skip = new nn.Linear(3, hidden);
    this.head = new nn.Linear(2 * hidden, 1);
  }
  forward(x) {
    const h = cat([this.body.forward(x), this.skip.forward(x).relu()], 1);
    return this.head.forward(h);
  }
}

function setup() {
  const model = new Net(64);
  const optimizer = new optim.Adam(model.parameters(), { lr: 0.01 });
  const scheduler = new optim.StepLR(optimizer, { stepSize: 4, gamma: 0.5 });
  const loader = new DataLoader(new TensorDataset(trainX, trainY), { batchSize: 64, shuffle: true, seed: 0 });
  return { model, optimizer, scheduler, loader };
}
const test = new DataLoader(new TensorDataset(testX, testY), { batchSize: 256 });
const mae = (out, target) => out.sub(target).abs().mean().item();
const path = join(tmpdir(), 'regression-checkpoint.safetensors');

// three epochs, then a checkpoint
const first = setup();
console.log(first.model);
fit(first.model, {
  train: first.loader, test, optimizer: first.optimizer, loss: new nn.MSELoss(), epochs: 3, metrics: { mae },
  onEpoch: (r) => {
    first.scheduler.step();
    console.log(`epoch ${r.epoch}: train ${r.trainLoss.toFixed(4)}, test ${r.testLoss.toFixed(4)}, mae ${r.testMetrics.mae.toFixed(4)}`);
  },
});
saveCheckpoint(path, { ...first, generators: { loader: first.loader.generator }, epoch: 3, step: 3 * first.loader.length });

// a new process would start here: the same objects, restored from the checkpoint, three more epochs
const resumed = setup();
const { epoch, step } = loadCheckpoint(path, { ...resumed, generators: { loader: resumed.loader.generator } });
fit(resumed.model, {
  train: resumed.loader, test, optimizer: resumed.optimizer, loss: new nn.MSELoss(), epochs: 6, startEpoch: epoch + 1, startStep: step,
  metrics: { mae },
  onEpoch: (r) => {
    resumed.scheduler.step();
    console.log(`epoch ${r.epoch}: train ${r.trainLoss.toFixed(4)}, test ${r.testLoss.toFixed(4)}, mae ${r.testMetrics.mae.toFixed(4)}`);
  },
});
const { loss } = evaluate(resumed.model, test, new nn.MSELoss());
console.log(`test MSE ${loss.toFixed(4)}, lr ${resumed.scheduler.getLastLr()[0]}`);
resumed.model.eval();
console.log(sg.noGrad(() => resumed.model.forward(testX.narrow(0, 0, 3))));
console.log(testY.narrow(0, 0, 3));
