/** The optim namespace. */
export { Adam, AdamW, type AdamOptions } from './adam.js';
export { Optimizer } from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { CosineAnnealingLR, StepLR } from './lr_scheduler.js';
