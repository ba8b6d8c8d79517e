/** The stablegrad command: a short real training run and its outputs, eval, explode, and one-line errors. */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { load, loadMetadata, makeModel, save } from '../lib/index.js';

const root = join(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'stablegrad-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): { out: string; err: string; status: number | null } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'stablegrad.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  return { out: r.stdout, err: r.stderr, status: r.status };
}

describe('stablegrad train', () => {
  const out = join(dir, 'run');
  const run = cli('train', '--epochs', '1', '--batch-size', '128', '--seed', '3', '--out', out);

  it('trains one epoch of the seed model on MNIST and prints one plain line per epoch when not on a terminal', () => {
    expect(run.err).toBe('');
    expect(run.status).toBe(0);
    expect(run.out).toMatch(/^epoch 1\/1: train loss [\d.]+, test loss [\d.]+, test accuracy (9\d\.\d\d)%, [\d,]+ samples\/s, [\d.]+ s$/m);
  });

  it('writes metrics.jsonl with exactly the documented keys, steps.jsonl, config.json, the model and the checkpoint', () => {
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics).toHaveLength(1);
    expect(Object.keys(metrics[0])).toEqual(['epoch', 'trainLoss', 'testLoss', 'testAccuracy', 'samplesPerSec', 'seconds', 'skippedSteps']);
    expect(metrics[0].testAccuracy).toBeGreaterThan(0.9);
    expect(metrics[0].testAccuracy).toBeLessThanOrEqual(1);
    const steps = readFileSync(join(out, 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(steps).toHaveLength(Math.ceil(60000 / 128));
    expect(steps[0]).toMatchObject({ epoch: 1, step: 0, skipped: false });
    expect(Object.keys(steps[0].gradNorms)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '3.weight', '3.bias']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model: 'seed', dataset: 'mnist', epochs: 1, batchSize: 128, lr: 0.01, optimizer: 'sgd', seed: 3 });
    expect(Object.keys(load(join(out, 'model.safetensors')))).toContain('1.running_var');
    expect(loadMetadata(join(out, 'checkpoint.safetensors'))).toMatchObject({ epoch: '1', step: String(Math.ceil(60000 / 128)) });
  });

  it('writes report.html with its SVG charts and nothing that needs the network', () => {
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(10); // what they show is checked in Chromium by test/report.test.ts
    for (const title of ['Loss per epoch', 'Test accuracy per epoch', 'Loss per step', 'Gradient flow', 'Gradient norm per step: weights']) expect(html).toContain(title);
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });

  it('eval reproduces the run\'s test accuracy, from the model or the checkpoint', () => {
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim());
    const want = `test loss ${metrics.testLoss.toFixed(4)}, test accuracy ${(100 * metrics.testAccuracy).toFixed(2)}% (10000 images)`;
    for (const file of ['model.safetensors', 'checkpoint.safetensors']) {
      const r = cli('eval', '--checkpoint', join(out, file));
      expect(r.status, r.err).toBe(0);
      expect(r.out.trim()).toBe(want);
    }
  });

  it('eval takes the model and dataset from the config.json beside the checkpoint', () => {
    const other = join(dir, 'deep-run');
    mkdirSync(other);
    save(makeModel('deep').stateDict(), join(other, 'model.safetensors'));
    copyFileSync(join(other, 'model.safetensors'), join(dir, 'loose.safetensors'));
    writeFileSync(join(other, 'config.json'), JSON.stringify({ model: 'deep', dataset: 'mnist', dataDir: null }));
    const r = cli('eval', '--checkpoint', join(other, 'model.safetensors'));
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/^test loss [\d.]+, test accuracy [\d.]+% \(10000 images\)$/m);
    const loose = cli('eval', '--checkpoint', join(dir, 'loose.safetensors'));
    expect(loose.status).toBe(2);
    expect(loose.err.trim().split('\n')).toHaveLength(1);
    expect(loose.err.length).toBeLessThan(500);
    expect(loose.err).toMatch(/does not fit model seed on mnist: it holds \d+ tensors .* give --model and --dataset/);
  });
});

describe('stablegrad train --resume', () => {
  const args = ['--epochs', '3', '--batch-size', '256', '--seed', '5', '--momentum', '0.9'];
  const stepsPerEpoch = Math.ceil(60000 / 256);
  const whole = cli('train', ...args, '--out', join(dir, 'whole'));
  const lines = (run: string, file: string) => readFileSync(join(dir, run, file), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const losses = (run: string) => lines(run, 'metrics.jsonl').map(({ epoch, trainLoss, testLoss, testAccuracy }) => ({ epoch, trainLoss, testLoss, testAccuracy }));

  /** Starts a run, SIGKILLs it as soon as its first checkpoint exists, and returns the checkpoint's metadata. */
  async function killedAtFirstCheckpoint(name: string, more: string[]): Promise<Record<string, string>> {
    const out = join(dir, name);
    const child = spawn(process.execPath, [join(root, 'bin', 'stablegrad.js'), 'train', ...args, ...more, '--out', out], { cwd: dir, stdio: 'ignore' });
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(join(out, 'checkpoint.safetensors'))) child.kill('SIGKILL');
      }, 5);
      child.on('exit', () => {
        clearInterval(poll);
        resolve();
      });
    });
    expect(existsSync(join(out, 'report.html'))).toBe(false);
    return loadMetadata(join(out, 'checkpoint.safetensors'));
  }

  function expectSameAsWhole(name: string): void {
    expect(readFileSync(join(dir, name, 'model.safetensors')).equals(readFileSync(join(dir, 'whole', 'model.safetensors')))).toBe(true);
    expect(losses(name)).toEqual(losses('whole'));
    expect(lines(name, 'steps.jsonl')).toEqual(lines('whole', 'steps.jsonl')); // every step's loss and gradient norms
    expect(existsSync(join(dir, name, 'report.html'))).toBe(true);
  }

  it('a run killed after an epoch and resumed ends with the same weights and losses as one never killed, bit for bit', async () => {
    expect(whole.status, whole.err).toBe(0);
    const saved = await killedAtFirstCheckpoint('killed', ['--checkpoint-every', '0']);
    expect(saved).toMatchObject({ epoch: '1', step: String(stepsPerEpoch) });
    const resumed = cli('train', '--resume', join(dir, 'killed'));
    expect(resumed.status, resumed.err).toBe(0);
    expect(resumed.out).toMatch(/^resuming .* after epoch 1 of 3 \(step 235\)/);
    expectSameAsWhole('killed');
  }, 300_000); // three epochs again, minutes under AddressSanitizer

  it('a run killed within its first epoch resumes from the checkpoint taken every N steps, bit for bit', async () => {
    expect(whole.status, whole.err).toBe(0);
    const saved = await killedAtFirstCheckpoint('killed-early', ['--checkpoint-every', '50']);
    const step = Number(saved.step); // 50 unless the poll came late
    expect(saved.epoch).toBe('0');
    expect(step % 50).toBe(0);
    expect(JSON.parse(saved.extra).progress).toMatchObject({ epoch: 1, batch: step, step, samples: step * 256 });
    const resumed = cli('train', '--resume', join(dir, 'killed-early'));
    expect(resumed.status, resumed.err).toBe(0);
    expect(resumed.out).toMatch(new RegExp(`^resuming .* within epoch 1 of 3 \\(batch ${step} of 235\\) \\(step ${step}\\)`));
    expectSameAsWhole('killed-early');
  }, 300_000);

  it('refuses a folder that is no run, and other settings beside --resume', () => {
    expect(cli('train', '--resume', join(dir, 'whole'), '--lr', '0.1').err.trim())
      .toBe('stablegrad: --resume continues a run with the settings in its config.json: only --threads may be given with it');
    expect(cli('train', '--resume', join(dir, 'nothing-here')).err.trim())
      .toBe(`stablegrad: cannot resume ${join(dir, 'nothing-here')}: it has no config.json (is it a run folder of stablegrad train?)`);
  });
});

describe('help and version', () => {
  it('--help describes every command and each of its flags; --version prints the version', () => {
    const top = cli('--help');
    expect(top.status).toBe(0);
    for (const c of ['train', 'eval', 'explode']) expect(top.out).toContain(`  ${c} `);
    const train = cli('train', '--help');
    expect(train.status).toBe(0);
    for (const flag of ['model', 'dataset', 'data-dir', 'batch-size', 'threads', 'epochs', 'lr', 'optimizer', 'momentum', 'weight-decay', 'clip-norm', 'seed', 'out', 'checkpoint-every', 'resume'])
      expect(train.out).toMatch(new RegExp(`^  --${flag} [A-Z]+ +\\S.{10,}$`, 'm'));
    expect(cli('eval', '--help').out).toMatch(/^ {2}--checkpoint FILE +model\.safetensors or checkpoint\.safetensors/m);
    expect(cli('explode', '-h').out).toMatch(/^ {2}--steps N /m);
    const v = cli('--version');
    expect(v.out.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });
});

describe('stablegrad explode', () => {
  it('runs deep and deep-nobn side by side and writes one comparing report', () => {
    const r = cli('explode', '--steps', '30', '--out', join(dir, 'explode'));
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/^deep: finite throughout; loss [\d.]+ at step 0, [\d.]+ at step 29$/m);
    expect(r.out).toMatch(/^deep-nobn: non-finite from step [0-2] \(loss [\d.]+ at step 0\); \d+ of 30 steps skipped; blamed: \d+\.weight/m);
    expect(readFileSync(join(dir, 'explode', 'report.html'), 'utf8').match(/<svg /g)).toHaveLength(8);
  });
});

describe('errors are one line and a non-zero exit, never a stack trace', () => {
  it.each([
    [['train', '--epochs', 'x'], 2, "stablegrad: option --epochs expects an integer >= 1 but received 'x'"],
    [['train', '--optimizer', 'rmsprop'], 2, "stablegrad: option --optimizer expects one of sgd, adam, adamw but received 'rmsprop'"],
    [['train', '--frobnicate', '3'], 2, 'stablegrad: unknown option --frobnicate (see stablegrad --help)'],
    [['train', '--out', '/proc/stablegrad-cannot-write'], 2, 'stablegrad: cannot write to the output folder /proc/stablegrad-cannot-write: ENOENT: no such file or directory, mkdir \'/proc/stablegrad-cannot-write\''],
    [['train', '--dataset', 'cifar10', '--model', 'cnn', '--data-dir', '/nonexistent', '--out', 'x'], 1, 'stablegrad: loadCifar10: /nonexistent/data_batch_1.bin does not exist (expected the binary version of CIFAR-10)'],
    [['eval'], 2, 'stablegrad: eval needs --checkpoint FILE (a model.safetensors written by stablegrad train)'],
    [['eval', '--checkpoint', join(root, 'package.json')], 2, /^stablegrad: load: .*package\.json is not a valid safetensors file: /],
    [['fly'], 2, "stablegrad: unknown command 'fly' (expected train, eval or explode; see stablegrad --help)"],
  ] as [string[], number, string | RegExp][])('%j', (args, status, message) => {
    const r = cli(...args);
    expect(r.status).toBe(status);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    if (typeof message === 'string') expect(r.err.trim()).toBe(message);
    else expect(r.err.trim()).toMatch(message);
  });
});
