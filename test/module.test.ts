/** Modules as PyTorch users write them: members registered by assignment, any forward, containers. */
import { describe, expect, it } from 'vitest';
import { cat, nn, ones, optim, randn, tensor, Tensor, zeros } from '../lib/index.js';

class Net extends nn.Module {
  fc1 = new nn.Linear(8, 16); // a class field: registered like an assignment in the constructor
  scale: nn.Parameter;
  last: Tensor | null = null;
  constructor() {
    super();
    this.scale = new nn.Parameter(ones([16]));
    this.registerBuffer('steps', zeros([]));
    this.fc2 = new nn.Linear(16, 2);
  }
  fc2: nn.Linear;
  forward(x: Tensor, extra?: Tensor): { out: Tensor; hidden: Tensor } {
    const h = this.fc1.forward(extra ? cat([x, extra], 1) : x).relu().mul(this.scale);
    this.last = h; // kept for logging: not a parameter, and stays readable
    return { out: this.fc2.forward(h), hidden: h };
  }
}

describe('modules by assignment', () => {
  it('registers modules, parameters and buffers under their property names, in assignment order', () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual(['scale', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    expect(Object.keys(net.stateDict())).toEqual(['scale', 'steps', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    expect(net.namedChildren().map(([n]) => n)).toEqual(['fc1', 'fc2']);
    expect(net.namedModules().map(([n]) => n)).toEqual(['', 'fc1', 'fc2']);
    expect(net.parameters()[0]).toBe(net.scale);
  });

  it('forward takes any arguments and returns any value; a tensor kept on the module is not a parameter', () => {
    const net = new Net();
    const before = net.parameters().length;
    const { out, hidden } = net.forward(randn([4, 5]), randn([4, 3]));
    expect(out.shape).toEqual([4, 2]);
    expect(hidden.shape).toEqual([4, 16]);
    expect(net.parameters().length).toBe(before); // this.last requires grad but is no leaf
    out.sum().backward();
    expect(net.last!.data.length).toBe(64);
    expect(net.scale.grad!.shape).toEqual([16]);
  });

  it('a leaf tensor made with requiresGrad counts as a parameter; a plain tensor does not; a frozen parameter stays', () => {
    class Affine extends nn.Module {
      w = randn([3], { requiresGrad: true });
      constant = ones([3]);
      forward(x: Tensor): Tensor {
        return x.mul(this.w).add(this.constant);
      }
    }
    const m = new Affine();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['w']);
    m.w.requiresGrad = false;
    expect(Object.keys(m.stateDict())).toEqual(['w']);
  });

  it('reassigning replaces in place; null parameters and buffers are absent from the state dict', () => {
    const lin = new nn.Linear(2, 3, { bias: false });
    expect(Object.keys(lin.stateDict())).toEqual(['weight']);
    const net = new Net();
    net.fc1 = new nn.Linear(8, 16, { bias: false });
    expect(net.namedParameters().map(([n]) => n)).toEqual(['scale', 'fc1.weight', 'fc2.weight', 'fc2.bias']);
  });

  it('an optimizer over the parameters trains a subclass', () => {
    const net = new Net(), opt = new optim.SGD(net.parameters(), { lr: 0.1 });
    const x = randn([32, 8]), y = randn([32, 2]);
    const loss = () => net.forward(x).out.sub(y).pow(2).mean();
    const first = loss().item();
    for (let i = 0; i < 20; i++) {
      opt.zeroGrad();
      loss().backward();
      opt.step();
    }
    expect(loss().item()).toBeLessThan(first * 0.8);
  });

  it('a state dict round-trips between two instances of a subclass', () => {
    const a = new Net(), b = new Net();
    b.loadStateDict(a.stateDict());
    expect(b.fc2.weight.toArray()).toEqual(a.fc2.weight.toArray());
  });

  it('bad registrations name the problem', () => {
    const net = new Net();
    expect(() => net.registerBuffer('a.b', zeros([1]))).toThrow(TypeError);
    expect(() => net.registerModule('forward', new nn.ReLU())).toThrow("registerModule: 'forward' is already a member of Net");
    expect(() => net.registerParameter('p', 3 as never)).toThrow('registerParameter: expected a Tensor or null but received number');
    (net as unknown as Record<string, unknown>).steps = 'x';
    expect(() => net.stateDict()).toThrow("Net: buffer 'steps' must be a Tensor or null but holds string");
    expect(() => new nn.Parameter([1, 2] as never)).toThrow(TypeError);
  });
});

describe('ModuleList and ModuleDict', () => {
  it('ModuleList registers by index and iterates in order', () => {
    class Deep extends nn.Module {
      blocks = new nn.ModuleList([new nn.Linear(4, 4), new nn.Linear(4, 4)]);
      forward(x: Tensor): Tensor {
        for (const block of this.blocks) x = block.forward(x).tanh();
        return x;
      }
    }
    const d = new Deep();
    d.blocks.append(new nn.Linear(4, 4));
    expect(d.blocks.length).toBe(3);
    expect(d.namedParameters().map(([n]) => n)).toEqual(
      ['blocks.0.weight', 'blocks.0.bias', 'blocks.1.weight', 'blocks.1.bias', 'blocks.2.weight', 'blocks.2.bias']);
    expect(d.forward(randn([2, 4])).shape).toEqual([2, 4]);
    expect(d.blocks.at(-1)).toBe(d.blocks.at(2));
    expect(() => d.blocks.at(3)).toThrow('ModuleList: index 3 is out of range for 3 modules');
    expect(() => d.blocks.forward()).toThrow(/ModuleList has no forward/);
  });

  it('ModuleDict registers by key in insertion order', () => {
    const heads = new nn.ModuleDict({ digit: new nn.Linear(16, 10), parity: new nn.Linear(16, 2) });
    expect(heads.keys()).toEqual(['digit', 'parity']);
    expect(Object.keys(heads.stateDict())).toEqual(['digit.weight', 'digit.bias', 'parity.weight', 'parity.bias']);
    expect(heads.get('digit').forward(randn([1, 16])).shape).toEqual([1, 10]);
    expect(heads.delete('digit')).toBeInstanceOf(nn.Linear);
    expect(heads.keys()).toEqual(['parity']);
    expect(() => heads.get('digit')).toThrow('ModuleDict: no module under key "digit" (keys: parity)');
    expect(() => heads.set('keys', new nn.Linear(16, 1))).toThrow(RangeError);
  });

  it('Sequential exposes its layers by index', () => {
    const s = new nn.Sequential(new nn.Linear(2, 2), new nn.ReLU());
    expect(s.length).toBe(2);
    expect(s.at(-1)).toBeInstanceOf(nn.ReLU);
    expect(s.forward(tensor([[1, 2]])).shape).toEqual([1, 2]);
  });
});
