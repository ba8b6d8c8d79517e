/** The models of the training job and the explosion demonstration. */
import * as nn from './nn/index.js';
import { defaultGenerator } from './random.js';

export const MODEL_NAMES = ['seed', 'seed-nobn', 'cnn', 'deep', 'deep-nobn'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/**
 * seed: Linear(784, 500), BatchNorm1d, ReLU, Linear(500, 10); seed-nobn without the BatchNorm.
 * cnn: (Conv2d 3x3 pad 1, BatchNorm2d, ReLU, MaxPool2d 2) with 32 then 64 channels, Flatten, Linear.
 * deep: 16 hidden layers of 256 units (Linear, BatchNorm1d, ReLU) with weights drawn from
 * N(0, (2/sqrt(fanIn))^2) and zero biases, which doubles the activations' variance per layer
 * without normalisation; deep-nobn the same without BatchNorm (it explodes).
 * Input: (N, 784) for the MLPs, (N, channels, size, size) for cnn; 10 classes.
 * @throws {RangeError} for an unknown name
 */
export function makeModel(name: ModelName, options: { channels?: number; size?: number } = {}): nn.Sequential {
  switch (name) {
    case 'seed':
      return new nn.Sequential(new nn.Linear(784, 500), new nn.BatchNorm1d(500), new nn.ReLU(), new nn.Linear(500, 10));
    case 'seed-nobn':
      return new nn.Sequential(new nn.Linear(784, 500), new nn.ReLU(), new nn.Linear(500, 10));
    case 'cnn': {
      const c = options.channels ?? 1, s = options.size ?? 28;
      return new nn.Sequential(
        new nn.Conv2d(c, 32, 3, { padding: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Conv2d(32, 64, 3, { padding: 1 }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Flatten(), new nn.Linear(64 * Math.floor(s / 4) ** 2, 10));
    }
    case 'deep':
    case 'deep-nobn': {
      const layers: nn.Module[] = [];
      let width = 784;
      for (let i = 0; i < 16; i++) {
        const linear = new nn.Linear(width, 256);
        const std = 2 / Math.sqrt(width);
        for (let j = 0; j < linear.weight.size; j++) linear.weight.values[j] = defaultGenerator.normal() * std;
        linear.bias!.values.fill(0);
        layers.push(linear, ...(name === 'deep' ? [new nn.BatchNorm1d(256)] : []), new nn.ReLU());
        width = 256;
      }
      layers.push(new nn.Linear(256, 10));
      return new nn.Sequential(...layers);
    }
    default:
      throw new RangeError(`unknown model '${name as string}': expected one of ${MODEL_NAMES.join(', ')}`);
  }
}
