/** Every ```js example in docs/API.md and README.md's seed model runs against the built package. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { format } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const requireFromRoot = createRequire(join(root, 'package.json'));
const entry = join(root, 'dist', 'cjs', 'index.js'); // built by `npm test` before vitest

function examples(file: string): string[] {
  return [...readFileSync(join(root, file), 'utf8').matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/**
 * Runs an example with its console.log calls recorded by line (what util.format prints, whitespace
 * collapsed and no space inside brackets).
 */
function run(code: string, extra: Record<string, unknown> = {}): Map<number, string> {
  const req = (id: string) => requireFromRoot(id === 'stablegrad' ? entry : id);
  const printed = new Map<number, string>();
  const log = (line: number, ...args: unknown[]) => {
    if (!printed.has(line)) printed.set(line, normalize(format(...args)));
  };
  const instrumented = code.split('\n').map((l, i) => l.replace(/console\.log\(/g, `__log(${i}, `)).join('\n');
  new Function('require', '__log', ...Object.keys(extra), instrumented)(req, log, ...Object.values(extra));
  return printed;
}

const normalize = (text: string) => text.replace(/\s+/g, ' ').replace(/\[ /g, '[').replace(/ \]/g, ']').trim();

/**
 * The result comments of an example: on a console.log line, or on a comment line right after one
 * (for long results), by the console.log's line; `// e.g. ...` (output that varies) is not one.
 */
function expectedOutputs(code: string): Map<number, string> {
  const lines = code.split('\n'), expected = new Map<number, string>();
  lines.forEach((l, i) => {
    if (!l.includes('console.log(')) return;
    const own = /\)\s*;?\s*\/\/\s*(.*)$/.exec(l)?.[1], next = /^\s*\/\/\s*(.*)$/.exec(lines[i + 1] ?? '')?.[1];
    const comment = own ?? next;
    if (comment !== undefined && !comment.startsWith('e.g.')) expected.set(i, normalize(comment));
  });
  return expected;
}

describe('documentation examples run and print what their comments say', () => {
  it.each(examples('docs/API.md').map((code, i) => [i + 1, code] as const))('docs/API.md example %i', (_, code) => {
    const printed = run(code), expected = expectedOutputs(code);
    for (const [line, want] of expected) expect(printed.get(line), `line ${line + 1}: ${code.split('\n')[line].trim()}`).toBe(want);
    // every console.log ran
    for (const [i, l] of code.split('\n').entries()) if (l.includes('console.log(')) expect(printed.has(i), `line ${i + 1} printed`).toBe(true);
  });

  it('the README seed model trains on real batches: the loss falls from chance', () => {
    const [seed] = examples('README.md').filter((c) => c.includes('new nn.Sequential'));
    const { DataLoader, loadMnist } = requireFromRoot(entry);
    const loader = new DataLoader(loadMnist({ train: true, flatten: true, limit: 640 }), { batchSize: 64, shuffle: true, seed: 0 });
    const batches = [...loader, ...loader, ...loader]; // 30 steps
    const req = (id: string) => requireFromRoot(id === 'stablegrad' ? entry : id);
    // the example as written, then its model's loss on a batch (untrained: about ln 10 = 2.3)
    const { model, lossFn } = new Function('require', 'batches', `${seed}\nreturn { model, lossFn };`)(req, batches);
    const [x, y] = batches[0];
    model.eval();
    expect(lossFn.forward(model.forward(x), y).item()).toBeLessThan(1);
  });

  it("the README's first command trains the seed model on the real MNIST data (1 epoch here)", () => {
    const [first] = readFileSync(join(root, 'README.md'), 'utf8').match(/^npm ci && npx stablegrad train\b.*$/m) ?? [];
    expect(first).toBeDefined();
    const out = mkdtempSync(join(tmpdir(), 'stablegrad-readme-'));
    try {
      const r = spawnSync('npx', ['stablegrad', 'train', '--epochs', '1', '--out', out], { cwd: root, encoding: 'utf8', timeout: 300_000 });
      expect(r.status).toBe(0);
      const accuracy = Number(/test accuracy ([\d.]+)%/.exec(r.stdout)?.[1]);
      expect(accuracy).toBeGreaterThan(93.2); // PyTorch 1.13, same settings: 93.6% (we measured 93.80%)
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('examples/regression.mjs, a PyTorch user\'s script beside its twin regression.py, runs and learns', () => {
    const r = spawnSync(process.execPath, [join(root, 'examples', 'regression.mjs')], { cwd: root, encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    // the module prints as PyTorch prints the twin's (True as true)
    expect(lines.slice(0, 9)).toEqual([
      'Net(', '  (body): Sequential(', '    (0): Linear(in_features=3, out_features=64, bias=true)',
      '    (1): BatchNorm1d(64, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)', '    (2): ReLU()', '  )',
      '  (skip): Linear(in_features=3, out_features=64, bias=true)', '  (head): Linear(in_features=128, out_features=1, bias=true)', ')']);
    expect(lines.filter((l) => /^epoch [1-6]: train [\d.]+, test [\d.]+, mae [\d.]+$/.test(l))).toHaveLength(6);
    const mse = Number(/^test MSE ([\d.]+), lr 0.005$/m.exec(r.stdout)?.[1]);
    expect(mse).toBeLessThan(0.4); // the target's variance is about 6
    expect(r.stdout).toMatch(/^tensor\(\[\[ *-?[\d.]+\],\n {8}\[ *-?[\d.]+\],\n {8}\[ *-?[\d.]+\]\], shape=\[3, 1\]\)$/m);
  });
});
