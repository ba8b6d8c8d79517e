export { ByteImageDataset, DataLoader, TensorDataset, type ByteNormalization, type Dataset, type DataLoaderOptions } from './dataset.js';
export { readIdx, type IdxArray } from './idx.js';
export { CIFAR10_MEAN, CIFAR10_STD, loadCifar10, loadMnist, MNIST_MEAN, MNIST_STD, mnistDataDir, type MnistOptions } from './mnist.js';
