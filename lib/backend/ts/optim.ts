/** Optimizer steps: the specification of native/kernels/optim.cpp (PyTorch's update rules). */

export function sgdStep(param: Float32Array, momentumBuffer: Float32Array | null, grad: Float32Array, lr: number,
  momentum: number, dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean): void {
  if (momentum === 0 || !momentumBuffer) {
    // The plain step on its own loop: V8 does not hoist the momentum test (1.4 -> 0.85 ms on 392k
    // values). Four values an iteration, with int32 indices: V8 checks the arrays' maps and lengths
    // once an iteration, not once a value (392k values: 800 -> 630 us).
    const n = param.length, n4 = n & ~3, wd = weightDecay;
    let i = 0;
    for (; i < n4; i = (i + 4) | 0) {
      const i1 = (i + 1) | 0, i2 = (i + 2) | 0, i3 = (i + 3) | 0;
      const p0 = param[i], p1 = param[i1], p2 = param[i2], p3 = param[i3];
      const g0 = grad[i], g1 = grad[i1], g2 = grad[i2], g3 = grad[i3];
      param[i] = p0 - lr * (g0 + wd * p0);
      param[i1] = p1 - lr * (g1 + wd * p1);
      param[i2] = p2 - lr * (g2 + wd * p2);
      param[i3] = p3 - lr * (g3 + wd * p3);
    }
    for (; i < n; i++) {
      const p = param[i];
      param[i] = p - lr * (grad[i] + wd * p);
    }
    return;
  }
  for (let i = 0; i < param.length; i++) {
    const d = grad[i] + weightDecay * param[i];
    const buf = firstStep ? d : momentum * momentumBuffer[i] + (1 - dampening) * d;
    momentumBuffer[i] = buf;
    param[i] -= lr * (nesterov ? d + momentum * buf : buf);
  }
}

export function adamStep(param: Float32Array, expAvg: Float32Array, expAvgSq: Float32Array, grad: Float32Array,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, decoupled: boolean): void {
  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  const decay = decoupled ? 1 - lr * weightDecay : 1;
  const l2 = decoupled ? 0 : weightDecay;
  for (let i = 0; i < param.length; i++) {
    const p = param[i] * decay;
    const g = grad[i] + l2 * p;
    const m = expAvg[i] * beta1 + (1 - beta1) * g;
    const v = expAvgSq[i] * beta2 + (1 - beta2) * g * g;
    expAvg[i] = m;
    expAvgSq[i] = v;
    param[i] = p - stepSize * (m / (Math.sqrt(v) / bc2Sqrt + eps));
  }
}
