/** The nn namespace: modules, losses and their functional forms. */
export { Module, Parameter } from './module.js';
export { ModuleDict, ModuleList } from './containers.js';
export { BatchNorm1d, BatchNorm2d, Dropout, Flatten, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh, type BatchNormOptions } from './layers.js';
export { CrossEntropyLoss, MSELoss } from './loss.js';
export { AvgPool2d, Conv2d, LayerNorm, MaxPool2d } from './conv.js';
import { leakyRelu } from './layers.js';
import { batchNorm, crossEntropy, linear, mergeBatchNormStats, mseLoss } from './functional.js';
import { logSoftmax, relu, sigmoid, softmax, tanh } from '../tensor.js';
/** Functional forms: nn.functional.linear, crossEntropy, mseLoss, batchNorm, relu, ... */
export const functional = { linear, batchNorm, mergeBatchNormStats, crossEntropy, mseLoss, relu, leakyRelu, sigmoid, tanh, softmax, logSoftmax };
export type { BatchNormStats } from './functional.js';
export * as utils from './utils.js';
export { SyncBatchNorm } from './sync_batchnorm.js';
import { DistributedDataParallel } from './parallel.js';
/** Data-parallel training: nn.parallel.DistributedDataParallel (see distributed). */
export const parallel = { DistributedDataParallel };
