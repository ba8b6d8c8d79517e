"""The reference figures for `npm run bench`, run by Debian's /usr/bin/python3 (bench/index.mjs
starts it once per configuration and reads one JSON object from its standard output).

  reference.py probe                numpy's and torch's versions, and the BLAS numpy loaded.
  reference.py gemm SIZES           numpy's sgemm (OpenBLAS): best GFLOP/s for each square size.
                                    The thread count and kernel come from the environment
                                    (OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE), read when numpy loads.
  reference.py torch THREADS DATA   PyTorch on THREADS threads: BatchNorm train forward+backward and
                                    eval forward per shape, the seed model's training epoch on the
                                    MNIST IDX files in DATA, and the three products of the seed model.
  reference.py modules THREADS SHAPES
                                    PyTorch's BatchNorm modules on THREADS threads, forward+backward
                                    in training mode per shape: the best and the median time of
                                    repeated calls (bench/api.mjs).

Each result is checked before it is timed: numpy's product against a float64 product, PyTorch's
BatchNorm against the formula in float64. Timings are the best of repeated runs, as in the bench.
"""
import json
import sys
import time


def times(fn, min_seconds=0.5, min_calls=20):
    """The best and the median time of repeated calls (after one to warm up)."""
    fn()
    samples, total = [], 0.0
    while len(samples) < min_calls or total < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        total += samples[-1]
    samples.sort()
    return {'best': samples[0], 'median': samples[len(samples) // 2]}


def best_time(fn, min_seconds=0.4, min_calls=3):
    return times(fn, min_seconds, min_calls)['best']


def torch_batchnorm(shape):
    """A BatchNorm module for shape (random scale and shift), its input, its output checked against the
    formula in float64, and a training step: forward+backward, the gradients cleared as a user would."""
    import torch
    c = shape[1]
    bn = torch.nn.BatchNorm1d(c) if len(shape) <= 3 else torch.nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    x = (torch.rand(shape) - 0.5).requires_grad_(True)
    dy = torch.rand(shape) - 0.5
    dims = [0] + list(range(2, len(shape)))
    view = [1, c] + [1] * (len(shape) - 2)
    y = bn(x)
    x64 = x.detach().double()
    mean, var = x64.mean(dims, keepdim=True), x64.var(dims, unbiased=False, keepdim=True)
    expected = (x64 - mean) / torch.sqrt(var + bn.eps) * bn.weight.double().view(view) + bn.bias.double().view(view)
    err = (y.double() - expected).abs().max().item()
    if not err < 1e-4:
        raise SystemExit(f'torch batchnorm {shape}: error {err}')

    def train_step():
        x.grad = None
        bn.weight.grad = None
        bn.bias.grad = None
        bn(x).backward(dy)

    return bn, x, train_step


def gemm(sizes):
    import numpy as np
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        a = rng.random((n, n), dtype=np.float32) - 0.5
        b = rng.random((n, n), dtype=np.float32) - 0.5
        c = a @ b
        exact = a[:16].astype(np.float64) @ b.astype(np.float64)
        err = np.abs(c[:16] - exact).max() / np.abs(exact).max()
        if not err < 1e-5:
            raise SystemExit(f'numpy sgemm {n}: error {err}')
        seconds = best_time(lambda: np.matmul(a, b, out=c), 1.0)  # the same window as the bench's
        out[str(n)] = 2 * n ** 3 / seconds / 1e9
    return {'gflops': out}


def read_idx(path):
    import numpy as np
    with open(path, 'rb') as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def torch_refs(threads, data_dir, bn_shapes):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    result = {'version': torch.__version__, 'threads': torch.get_num_threads(), 'batchnorm': {}}

    for shape in bn_shapes:
        bn, x, train_step = torch_batchnorm(shape)
        bn.train()
        train = best_time(train_step)
        bn.eval()
        with torch.no_grad():
            evaluate = best_time(lambda: bn(x))
        result['batchnorm'][','.join(map(str, shape))] = {'train_fwd_bwd': train, 'eval_fwd': evaluate}

    # the seed model's three products, as torch.mm runs them (y = x W^T, dW = g^T x, dx = g W)
    products = {}
    for name, (m, n, k, ta, tb) in {'forward': (64, 500, 784, False, True), 'weight grad': (500, 784, 64, True, False),
                                    'input grad': (64, 784, 500, False, False)}.items():
        a = torch.rand((k, m) if ta else (m, k)) - 0.5
        b = torch.rand((n, k) if tb else (k, n)) - 0.5
        op_a, op_b = (a.t() if ta else a), (b.t() if tb else b)
        seconds = best_time(lambda: torch.mm(op_a, op_b), 1.0)
        products[name] = 2 * m * n * k / seconds / 1e9
    result['seed_products_gflops'] = products

    # the seed model, one training epoch: the data as one tensor, a fresh permutation per epoch,
    # batches by indexing (no DataLoader workers: the fastest single-process configuration)
    images = torch.from_numpy(read_idx(f'{data_dir}/train-images-idx3-ubyte').copy()).float().div_(255).view(-1, 784)
    images = (images - 0.1307) / 0.3081
    labels = torch.from_numpy(read_idx(f'{data_dir}/train-labels-idx1-ubyte').copy()).long()
    model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.BatchNorm1d(500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        order = torch.randperm(len(labels))
        total = 0.0
        for start in range(0, len(labels), 64):
            idx = order[start:start + 64]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(images[idx]), labels[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        return total

    epochs = []
    for _ in range(2):  # the first epoch warms up; the best is reported
        t0 = time.perf_counter()
        epoch()
        epochs.append(time.perf_counter() - t0)
    result['seed_epoch'] = {'samples_per_sec': len(labels) / min(epochs), 'seconds': min(epochs)}
    return result


def batchnorm_modules(threads, bn_shapes):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for shape in bn_shapes:
        out[','.join(map(str, shape))] = times(torch_batchnorm(shape)[2])
    return {'version': torch.__version__, 'threads': torch.get_num_threads(), 'batchnorm': out}


def probe():
    """Which references this Python can run: numpy (and the BLAS it loaded), torch."""
    out = {'numpy': None, 'blas': None, 'torch': None}
    try:
        import numpy as np
        out['numpy'] = np.__version__
        np.ones((64, 64), dtype=np.float32) @ np.ones((64, 64), dtype=np.float32)  # loads the BLAS
        with open('/proc/self/maps') as f:
            out['blas'] = sorted({line.split()[-1] for line in f if 'blas' in line.split()[-1].lower()})
    except ImportError:
        pass
    try:
        import torch
        out['torch'] = torch.__version__
    except ImportError:
        pass
    return out


def main():
    if sys.argv[1] == 'probe':
        print(json.dumps(probe()))
    elif sys.argv[1] == 'gemm':
        print(json.dumps(gemm([int(s) for s in sys.argv[2].split(',')])))
    elif sys.argv[1] == 'modules':
        shapes = [[int(d) for d in s.split('x')] for s in sys.argv[3].split(',')]
        print(json.dumps(batchnorm_modules(int(sys.argv[2]), shapes)))
    elif sys.argv[1] == 'torch':
        shapes = [[int(d) for d in s.split('x')] for s in sys.argv[4].split(',')]
        print(json.dumps(torch_refs(int(sys.argv[2]), sys.argv[3], shapes)))
    else:
        raise SystemExit(f'unknown mode {sys.argv[1]}')


if __name__ == '__main__':
    main()
