/** Optimizer steps: the specification of native/kernels/optim.cpp (PyTorch's update rules). */

export function sgdStep(param: Float32Array, momentumBuffer: Float32Array | null, grad: Float32Array, lr: number,
  momentum: number, dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean): void {
  for (let i = 0; i < param.length; i++) {
    let d = grad[i] + weightDecay * param[i];
    if (momentum !== 0 && momentumBuffer) {
      const buf = firstStep ? d : momentum * momentumBuffer[i] + (1 - dampening) * d;
      momentumBuffer[i] = buf;
      d = nesterov ? d + momentum * buf : buf;
    }
    param[i] -= lr * d;
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
