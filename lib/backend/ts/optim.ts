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
  let i = 0;
  if (!nesterov && !firstStep) {
    // the usual momentum step, four values an iteration with every load before the stores
    // (392k values: 1.7-2.6 -> 1.0 ms); the same operations as the loop below
    const n4 = param.length & ~3, keep = 1 - dampening, wd = weightDecay;
    for (; i < n4; i = (i + 4) | 0) {
      const i1 = (i + 1) | 0, i2 = (i + 2) | 0, i3 = (i + 3) | 0;
      const p0 = param[i], p1 = param[i1], p2 = param[i2], p3 = param[i3];
      const b0 = momentum * momentumBuffer[i] + keep * (grad[i] + wd * p0);
      const b1 = momentum * momentumBuffer[i1] + keep * (grad[i1] + wd * p1);
      const b2 = momentum * momentumBuffer[i2] + keep * (grad[i2] + wd * p2);
      const b3 = momentum * momentumBuffer[i3] + keep * (grad[i3] + wd * p3);
      momentumBuffer[i] = b0;
      momentumBuffer[i1] = b1;
      momentumBuffer[i2] = b2;
      momentumBuffer[i3] = b3;
      param[i] = p0 - lr * b0;
      param[i1] = p1 - lr * b1;
      param[i2] = p2 - lr * b2;
      param[i3] = p3 - lr * b3;
    }
  }
  for (; i < param.length; i++) {
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
  const l2 = decoupled ? 0 : weightDecay, k1 = 1 - beta1, k2 = 1 - beta2;
  // four values an iteration with every load before the stores (392k values: 3.3 -> 2.7 ms)
  const n4 = param.length & ~3;
  let i = 0;
  for (; i < n4; i = (i + 4) | 0) {
    const i1 = (i + 1) | 0, i2 = (i + 2) | 0, i3 = (i + 3) | 0;
    const p0 = param[i] * decay, p1 = param[i1] * decay, p2 = param[i2] * decay, p3 = param[i3] * decay;
    const g0 = grad[i] + l2 * p0, g1 = grad[i1] + l2 * p1, g2 = grad[i2] + l2 * p2, g3 = grad[i3] + l2 * p3;
    const m0 = expAvg[i] * beta1 + k1 * g0, m1 = expAvg[i1] * beta1 + k1 * g1;
    const m2 = expAvg[i2] * beta1 + k1 * g2, m3 = expAvg[i3] * beta1 + k1 * g3;
    const v0 = expAvgSq[i] * beta2 + k2 * g0 * g0, v1 = expAvgSq[i1] * beta2 + k2 * g1 * g1;
    const v2 = expAvgSq[i2] * beta2 + k2 * g2 * g2, v3 = expAvgSq[i3] * beta2 + k2 * g3 * g3;
    expAvg[i] = m0;
    expAvg[i1] = m1;
    expAvg[i2] = m2;
    expAvg[i3] = m3;
    expAvgSq[i] = v0;
    expAvgSq[i1] = v1;
    expAvgSq[i2] = v2;
    expAvgSq[i3] = v3;
    param[i] = p0 - stepSize * (m0 / (Math.sqrt(v0) / bc2Sqrt + eps));
    param[i1] = p1 - stepSize * (m1 / (Math.sqrt(v1) / bc2Sqrt + eps));
    param[i2] = p2 - stepSize * (m2 / (Math.sqrt(v2) / bc2Sqrt + eps));
    param[i3] = p3 - stepSize * (m3 / (Math.sqrt(v3) / bc2Sqrt + eps));
  }
  for (; i < param.length; i++) {
    const p = param[i] * decay;
    const g = grad[i] + l2 * p;
    const m = expAvg[i] * beta1 + k1 * g;
    const v = expAvgSq[i] * beta2 + k2 * g * g;
    expAvg[i] = m;
    expAvgSq[i] = v;
    param[i] = p - stepSize * (m / (Math.sqrt(v) / bc2Sqrt + eps));
  }
}
