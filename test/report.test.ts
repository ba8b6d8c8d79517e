/**
 * The HTML reports as a reader sees them: rendered in headless Chromium (Debian's chromium), with a
 * checker script added to a copy of each page. No chart is empty without a note saying why, no two
 * labels overlap or leave their chart, every series is in its legend, and the explode report's pairs
 * share their scales.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolEnv } from './helpers.js';

const root = join(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'stablegrad-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs in the page: each chart's marks, notes, legend, series, y ticks, and any overlapping or escaping labels. */
const CHECKER = `<script>
const charts = [];
for (const svg of document.querySelectorAll('svg.chart')) {
  const frame = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].map((t) => ({ text: t.textContent, box: t.getBoundingClientRect() }));
  const overlaps = [];
  for (let i = 0; i < texts.length; i++)
    for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i].box, b = texts[j].box;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) overlaps.push(texts[i].text + ' / ' + texts[j].text);
    }
  const outside = texts.filter(({ box }) => box.left < frame.left - 1 || box.right > frame.right + 1 || box.top < frame.top - 1 || box.bottom > frame.bottom + 1).map((t) => t.text);
  charts.push({
    title: svg.dataset.title, kind: svg.dataset.kind,
    marks: [...svg.querySelectorAll('path.series')].filter((p) => p.getAttribute('d')).length + svg.querySelectorAll('rect.cell').length,
    hovers: svg.querySelectorAll('circle > title, rect.cell > title').length,
    notes: [...svg.querySelectorAll('text.note')].map((t) => t.textContent),
    legend: [...svg.querySelectorAll('.legend-entry text')].map((t) => t.textContent),
    series: [...new Set([...svg.querySelectorAll('path.series[data-series]')].map((p) => p.dataset.series))],
    yTicks: [...svg.querySelectorAll('text.tick[text-anchor="end"]')].map((t) => t.textContent),
    axisTitles: [...svg.querySelectorAll('text.axis-title')].map((t) => t.textContent),
    top: frame.top, overlaps, outside,
  });
}
const pre = document.createElement('pre');
pre.id = 'report-check';
pre.textContent = JSON.stringify(charts);
document.body.appendChild(pre);
</script>`;

interface Chart {
  title: string; kind: string; marks: number; hovers: number; notes: string[]; legend: string[]; series: string[]; yTicks: string[];
  axisTitles: string[]; top: number; overlaps: string[]; outside: string[];
}

function render(report: string): Chart[] {
  const page = join(dir, `checked-${Math.random().toString(36).slice(2)}.html`);
  writeFileSync(page, readFileSync(report, 'utf8').replace('</body>', `${CHECKER}</body>`));
  const html = execFileSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${join(dir, 'profile')}`,
    '--window-size=1400,1000', '--virtual-time-budget=10000', '--dump-dom', `file://${page}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000, env: toolEnv() });
  const json = /<pre id="report-check">([\s\S]*?)<\/pre>/.exec(html)?.[1];
  if (!json) throw new Error(`the checker did not run in ${report}`);
  return JSON.parse(json.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin', 'stablegrad.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
}

const reports: Record<string, Chart[]> = {};
beforeAll(() => {
  expect(cli('train', '--epochs', '2', '--batch-size', '256', '--out', join(dir, 'train')).status).toBe(0);
  expect(cli('train', '--model', 'deep-nobn', '--epochs', '1', '--out', join(dir, 'diverged')).status).toBe(1);
  expect(cli('explode', '--steps', '60', '--out', join(dir, 'explode')).status).toBe(0);
  for (const name of ['train', 'diverged', 'explode']) reports[name] = render(join(dir, name, 'report.html'));
}, 600_000);

describe('reports rendered in Chromium', () => {
  it.each(['train', 'diverged', 'explode'])('%s: no empty chart without a note, no overlapping or escaping labels, complete legends, titled axes', (name) => {
    const charts = reports[name];
    expect(charts.length).toBeGreaterThanOrEqual(6);
    for (const c of charts) {
      expect(c.marks > 0 || c.notes.length > 0, `${c.title}: drawn or explained`).toBe(true);
      expect(c.overlaps, `${c.title}: overlapping labels`).toEqual([]);
      expect(c.outside, `${c.title}: labels outside the chart`).toEqual([]);
      for (const s of c.series) expect(c.legend, `${c.title}: legend`).toContain(s);
      expect(new Set(c.legend).size).toBe(c.legend.length);
      expect(c.axisTitles.length, `${c.title}: axis titles`).toBe(2);
      expect(c.axisTitles.every((t) => t.length > 0)).toBe(true);
      if (c.marks > 0) expect(c.hovers, `${c.title}: hover values`).toBeGreaterThan(0);
    }
  });

  it('train: loss, accuracy, learning rate, throughput, gradient flow, the heatmap and the gradient norms by kind, with round ticks', () => {
    const titles = reports.train.map((c) => c.title);
    for (const t of ['Loss per epoch', 'Test accuracy per epoch', 'Loss per step', 'Learning rate', 'Throughput per epoch', 'Gradient flow',
      'Gradient norm by layer', 'Gradient norm per step: weights', 'Gradient norm per step: biases', 'Gradient norm per step: BatchNorm'])
      expect(titles.some((x) => x.startsWith(t)), t).toBe(true);
    for (const c of reports.train.filter((x) => x.kind === 'line'))
      for (const tick of c.yTicks) expect(tick, `${c.title}: round tick`).toMatch(/^-?(\d{1,3}(,\d{3})*(\.\d{1,4})?|\d(\.\d)?e-?\d+|\d(\.\d)?×1e-?\d+)$/);
    const accuracy = reports.train.find((c) => c.title === 'Test accuracy per epoch')!;
    expect(accuracy.yTicks.every((t) => !/\.\d{3,}/.test(t))).toBe(true);
  });

  it('a diverged run says so on its charts', () => {
    const byTitle = Object.fromEntries(reports.diverged.map((c) => [c.title, c]));
    expect(byTitle['Loss per epoch'].notes).toEqual(['No values were recorded.']);
    expect(byTitle['Gradient norm per step: weights'].notes.join(' ')).toMatch(/Non-finite \(NaN or infinite\) from step \d+/);
    expect(byTitle['Gradient norm per step: weights'].marks).toBeGreaterThan(0);
  });

  it('explode: the two models side by side, each pair on the same scale', () => {
    const charts = reports.explode;
    expect(charts).toHaveLength(8);
    for (let i = 0; i < charts.length; i += 2) {
      const [withBn, without] = [charts[i], charts[i + 1]];
      expect(withBn.title).toMatch(/^with BatchNorm/);
      expect(without.title).toMatch(/^without BatchNorm/);
      expect(without.top).toBe(withBn.top); // side by side
      if (withBn.kind === 'line') expect(without.yTicks).toEqual(withBn.yTicks);
    }
    const flow = charts.find((c) => c.title.startsWith('without BatchNorm (deep-nobn): gradient norm by layer'))!;
    expect(flow.notes.join(' ')).toMatch(/Non-finite/);
    expect(charts.find((c) => c.title.startsWith('with BatchNorm (deep): gradient norm by layer'))!.notes).toEqual([]);
  });
});
