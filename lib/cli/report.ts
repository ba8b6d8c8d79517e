/**
 * report.html: self-contained SVG charts (no scripts, no network). Axes have round ticks and
 * titles; every line and point says its values on hover (SVG <title>); a chart with nothing finite
 * to draw says why; legends list every series, laid out below the plot when there are many.
 */

export interface Series {
  name: string;
  points: [number, number][];
  /** a fixed colour (default: from the palette, or by depth when the chart has `depthColors`) */
  color?: string;
}

export interface ChartOptions {
  xTitle: string;
  yTitle: string;
  logY?: boolean;
  /** x values are whole numbers (epochs, steps, layers): ticks on integers only */
  integerX?: boolean;
  /** mark non-finite values with a red tick at the top of the plot, and say where they start */
  markNonFinite?: boolean;
  /** draw each series faint with its exponential moving average over it (for per-step values) */
  smooth?: boolean;
  /** the y range to draw (in log10 units for logY), shared by charts that are compared side by side */
  yDomain?: [number, number];
  /** colour series along a scale, first to last (layers by depth) */
  depthColors?: boolean;
  /** what an x value stands for, in hover texts and notes (a layer's name), by x value */
  xNames?: Record<number, string>;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const WIDTH = 600, PLOT_H = 230, LEFT = 72, RIGHT = 20, TITLE_H = 30, NOTE_H = 15, AXIS_H = 44;

/** A colour from dark blue through green to yellow (viridis), t in [0, 1]. */
function depthColor(t: number): string {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c.join(',')})`;
}

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten (whole numbers when integer). */
function niceTicks(lo: number, hi: number, integer = false, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.ceil(lo / step - 1e-9) * step, out: number[] = [];
  for (let v = first; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
  return out;
}

/** A tick label with no more digits than the tick spacing needs: 0.25, 1,500, 2e-5. */
function tickLabel(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(Math.max(0, Math.min(3, -Math.floor(Math.log10(step / a) + 1e-9)))).replace('e+', 'e');
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** A value for a hover text. */
const hoverValue = (v: number) => (Number.isFinite(v) ? (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toPrecision(5) + '') : String(v));

/** log10 ticks: every decade, or 1-2-5 within a decade or two. */
function logTicks(lo: number, hi: number): { at: number; text: string }[] {
  const decades = Math.floor(hi) - Math.ceil(lo) + 1;
  const mults = decades >= 3 ? [1] : decades >= 1 ? [1, 2, 5] : [1, 1.5, 2, 3, 5, 7];
  const out: { at: number; text: string }[] = [];
  const every = Math.max(1, Math.ceil(decades / 6));
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    if (decades >= 3 && k % every !== 0) continue;
    for (const m of mults) {
      const at = k + Math.log10(m);
      if (at >= lo - 1e-9 && at <= hi + 1e-9) {
        const v = m * 10 ** k;
        out.push({ at, text: k >= 4 || k <= -3 ? `${m === 1 ? '' : `${m}×`}1e${k}` : +v.toPrecision(3) + '' });
      }
    }
  }
  return out;
}

/** Exponential moving average with bias correction (as TensorBoard's smoothing), restarted after a non-finite value. */
function smoothed(points: [number, number][], weight = 0.9): [number, number][] {
  let avg = 0, n = 0;
  return points.map(([x, y]) => {
    if (!Number.isFinite(y)) {
      avg = 0;
      n = 0;
      return [x, y];
    }
    avg = weight * avg + (1 - weight) * y;
    n++;
    return [x, avg / (1 - weight ** n)];
  });
}

/** Every entry, in rows of as many columns as the longest name allows. */
function legend(series: { name: string; color: string }[], top: number): { svg: string; height: number } {
  const colWidth = Math.max(110, ...series.map((s) => 24 + s.name.length * 6.5));
  const perRow = Math.max(1, Math.floor((WIDTH - LEFT) / colWidth));
  const rows = Math.ceil(series.length / perRow);
  const svg = series.map((s, i) => {
    const x = LEFT + (i % perRow) * colWidth, y = top + Math.floor(i / perRow) * 16;
    return `<g class="legend-entry"><rect x="${x}" y="${y}" width="10" height="10" fill="${s.color}"/>` +
      `<text x="${x + 14}" y="${y + 9}" font-size="11">${escape(s.name)}</text></g>`;
  }).join('');
  return { svg, height: rows * 16 };
}

function svg(height: number, body: string, kind: string, title: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-kind="${kind}" data-title="${escape(title)}" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">${body}</svg>`;
}

/** A chart's title and its notes (why nothing, or not everything, is drawn); the plot starts at `top`. */
function heading(title: string, notes: string[]): { parts: string[]; top: number } {
  return {
    parts: [`<text class="chart-title" x="${LEFT}" y="18" font-size="14" font-weight="bold">${escape(title)}</text>`,
      ...notes.map((n, i) => `<text class="note" x="${LEFT}" y="${TITLE_H + 9 + i * NOTE_H}" font-size="11" fill="#b00">${escape(n)}</text>`)],
    top: TITLE_H + notes.length * NOTE_H,
  };
}

/** The note of a chart with nothing finite to draw. */
const emptyNote = (anyNonFinite: boolean) => (anyNonFinite ? 'Nothing to draw: every value is NaN or infinite (the run diverged).' : 'No values were recorded.');

/** The frame, ticks and titles of a plot, under its notes; px/py map data to pixels. */
function axes(title: string, notes: string[], o: ChartOptions, x0: number, x1: number, y0: number, y1: number) {
  const { parts, top: TOP } = heading(title, notes);
  const px = (x: number) => LEFT + ((x - x0) / (x1 - x0 || 1)) * (WIDTH - LEFT - RIGHT);
  const py = (y: number) => TOP + (1 - (y - y0) / (y1 - y0 || 1)) * PLOT_H;
  parts.push(`<rect x="${LEFT}" y="${TOP}" width="${WIDTH - LEFT - RIGHT}" height="${PLOT_H}" fill="none" stroke="#999"/>`);
  const yTicks = o.logY ? logTicks(y0, y1) : niceTicks(y0, y1).map((v, _, all) => ({ at: v, text: tickLabel(v, all.length > 1 ? all[1] - all[0] : Math.abs(v) || 1) }));
  for (const t of yTicks)
    parts.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${py(t.at)}" y2="${py(t.at)}" stroke="#eee"/>` +
      `<text class="tick" x="${LEFT - 6}" y="${py(t.at) + 4}" font-size="10" text-anchor="end">${escape(t.text)}</text>`);
  const xTicks = niceTicks(x0, x1, o.integerX ?? false, 6);
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
  for (const v of xTicks)
    parts.push(`<text class="tick" x="${px(v)}" y="${TOP + PLOT_H + 14}" font-size="10" text-anchor="middle">${tickLabel(v, xStep)}</text>`);
  parts.push(`<text class="axis-title" x="${(LEFT + WIDTH - RIGHT) / 2}" y="${TOP + PLOT_H + 32}" font-size="11" text-anchor="middle">${escape(o.xTitle)}</text>`,
    `<text class="axis-title" transform="translate(14 ${TOP + PLOT_H / 2}) rotate(-90)" font-size="11" text-anchor="middle">${escape(o.yTitle + (o.logY ? ' (log scale)' : ''))}</text>`);
  return { px, py, parts, TOP };
}

/**
 * A line chart. Non-finite y values break the line (marked at the top with `markNonFinite`, and
 * named in a note); with logY, y <= 0 cannot be drawn and is left out, the finite part still shown.
 */
export function lineChart(title: string, series: Series[], o: ChartOptions): string {
  const tf = (y: number) => (o.logY ? (y > 0 ? Math.log10(y) : NaN) : y);
  const colored = series.map((s, i) => ({ ...s, color: s.color ?? (o.depthColors ? depthColor(i / Math.max(series.length - 1, 1)) : PALETTE[i % PALETTE.length]) }));
  const all = colored.flatMap((s) => s.points);
  const drawable = all.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(tf(y)));
  const xs = all.map((p) => p[0]).filter(Number.isFinite);
  const x0 = xs.length ? Math.min(...xs) : 0, x1 = xs.length ? Math.max(...xs, x0 + 1) : 1;
  let [y0, y1] = o.yDomain ?? [Math.min(...drawable.map((p) => tf(p[1]))), Math.max(...drawable.map((p) => tf(p[1])))];
  if (!drawable.length && !o.yDomain) [y0, y1] = o.logY ? [-1, 1] : [0, 1];
  if (!(y1 > y0)) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1];
  if (!o.logY) {
    const t = niceTicks(y0, y1); // the axis ends on round values
    y0 = Math.min(y0, t[0]);
    y1 = Math.max(y1, t[t.length - 1]);
  }
  const nonFinite = all.filter(([, y]) => !Number.isFinite(y)), skippedLog = o.logY ? all.filter(([, y]) => Number.isFinite(y) && y <= 0).length : 0;
  const notes: string[] = [];
  if (!drawable.length) notes.push(emptyNote(nonFinite.length > 0));
  else {
    if (nonFinite.length && o.markNonFinite)
      notes.push(`Non-finite (NaN or infinite) from ${o.xTitle} ${o.xNames?.[Math.min(...nonFinite.map((p) => p[0]))] ?? Math.min(...nonFinite.map((p) => p[0]))}: red ticks at the top.`);
    if (skippedLog) notes.push(`${skippedLog} values of 0 or below are left out of the log scale.`);
  }
  const { px, py, parts, TOP } = axes(title, notes, o, x0, x1, y0, y1);
  // the SVG path through points, broken where a value cannot be drawn, clamped to the y range
  const path = (points: [number, number][]) => {
    let d = '', pen = false;
    for (const [x, y] of points) {
      const v = tf(y);
      if (!Number.isFinite(v)) pen = false;
      else {
        d += `${pen ? 'L' : 'M'}${px(x).toFixed(1)},${py(Math.min(Math.max(v, y0), y1)).toFixed(1)}`;
        pen = true;
      }
    }
    return d;
  };
  for (const s of colored) {
    if (o.markNonFinite)
      for (const [x, y] of s.points) if (!Number.isFinite(y)) parts.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${TOP}" y2="${TOP + 6}" stroke="#d00"/>`);
    if (o.smooth) {
      const raw = path(s.points);
      if (raw) parts.push(`<path class="series raw" d="${raw}" fill="none" stroke="${s.color}" stroke-opacity="0.25" stroke-width="1"/>`);
    }
    const d = path(o.smooth ? smoothed(s.points) : s.points);
    if (d) parts.push(`<path class="series" data-series="${escape(s.name)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"><title>${escape(s.name)}</title></path>`);
    // hover targets: every point of a short series, about 60 of a long one
    const every = Math.max(1, Math.ceil(s.points.length / 60));
    s.points.forEach(([x, y], i) => {
      const v = tf(y);
      if (i % every !== 0 || !Number.isFinite(v) || v < y0 || v > y1) return;
      const shown = s.points.length <= 60;
      parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(v).toFixed(1)}" r="${shown ? 2.5 : 4}" fill="${s.color}"${shown ? '' : ' fill-opacity="0"'}>` +
        `<title>${escape(`${s.name}: ${o.xTitle} ${o.xNames?.[x] ?? x}, ${hoverValue(y)}`)}</title></circle>`);
    });
  }
  const lg = legend(colored, TOP + PLOT_H + AXIS_H);
  return svg(TOP + PLOT_H + AXIS_H + lg.height + 6, parts.join('') + lg.svg, 'line', title);
}

/**
 * A heatmap of log10 values: rows (top to bottom) by columns, with a colour bar; non-finite cells
 * are black and named in the legend.
 */
export function heatmap(title: string, rows: string[], columns: number[], values: (r: number, c: number) => number,
  o: { xTitle: string; yTitle: string; valueTitle: string; domain?: [number, number] }): string {
  const plotL = LEFT + 20, plotW = WIDTH - plotL - RIGHT - 60, rowH = Math.max(10, Math.min(40, 160 / Math.max(rows.length, 1)));
  const H = rows.length * rowH, cellW = plotW / Math.max(columns.length, 1);
  const logs: number[] = [];
  let nonFinite = 0;
  rows.forEach((_, r) => columns.forEach((_, c) => {
    const v = values(r, c);
    if (!Number.isFinite(v)) nonFinite++;
    else if (v > 0) logs.push(Math.log10(v));
  }));
  let [lo, hi] = o.domain ?? [Math.min(...logs), Math.max(...logs)];
  if (!logs.length && !o.domain) [lo, hi] = [-1, 1];
  if (!(hi > lo)) [lo, hi] = [lo - 0.5, hi + 0.5];
  const notes = !logs.length ? [emptyNote(nonFinite > 0)] : nonFinite ? [`${nonFinite} of ${rows.length * columns.length} cells are NaN or infinite (black).`] : [];
  const { parts, top: TOP } = heading(title, notes);
  rows.forEach((name, r) => {
    parts.push(`<text class="tick" x="${plotL - 6}" y="${TOP + r * rowH + rowH / 2 + 4}" font-size="${Math.min(10, rowH - 1)}" text-anchor="end">${escape(name)}</text>`);
    columns.forEach((step, c) => {
      const v = values(r, c), finite = Number.isFinite(v) && v > 0;
      const fill = finite ? depthColor((Math.log10(v) - lo) / (hi - lo)) : Number.isFinite(v) ? '#fff' : '#000';
      parts.push(`<rect class="cell" x="${(plotL + c * cellW).toFixed(1)}" y="${TOP + r * rowH}" width="${(cellW + 0.3).toFixed(1)}" height="${rowH}" fill="${fill}">` +
        `<title>${escape(`${name}, ${o.xTitle} ${step}: ${hoverValue(v)}`)}</title></rect>`);
    });
  });
  const xTicks = niceTicks(columns[0] ?? 0, columns[columns.length - 1] ?? 1, true, 6), span = (columns[columns.length - 1] ?? 1) - (columns[0] ?? 0) || 1;
  for (const t of xTicks)
    parts.push(`<text class="tick" x="${(plotL + ((t - (columns[0] ?? 0)) / span) * plotW).toFixed(1)}" y="${TOP + H + 14}" font-size="10" text-anchor="middle">${tickLabel(t, xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1)}</text>`);
  parts.push(`<text class="axis-title" x="${plotL + plotW / 2}" y="${TOP + H + 32}" font-size="11" text-anchor="middle">${escape(o.xTitle)}</text>`,
    `<text class="axis-title" transform="translate(14 ${TOP + H / 2}) rotate(-90)" font-size="11" text-anchor="middle">${escape(o.yTitle)}</text>`);
  // colour bar
  const barX = WIDTH - RIGHT - 40;
  for (let i = 0; i < 20; i++)
    parts.push(`<rect x="${barX}" y="${TOP + (H * i) / 20}" width="12" height="${H / 20 + 0.5}" fill="${depthColor(1 - i / 19)}"/>`);
  parts.push(`<text class="tick" x="${barX + 16}" y="${TOP + 8}" font-size="10">${tickLabel(10 ** hi, 10 ** hi)}</text>`,
    `<text class="tick" x="${barX + 16}" y="${TOP + H}" font-size="10">${tickLabel(10 ** lo, 10 ** lo)}</text>`);
  const entries = [{ name: `${o.valueTitle} (colour: log scale)`, color: depthColor(0.5) }, ...(nonFinite ? [{ name: 'NaN or infinite', color: '#000' }] : [])];
  const lg = legend(entries, TOP + H + AXIS_H);
  return svg(TOP + H + AXIS_H + lg.height + 6, parts.join('') + lg.svg, 'heatmap', title);
}

/** A whole report page: a title, a summary list, and sections of charts (a section of two is shown side by side). */
export function reportPage(title: string, summary: string[], sections: (string | string[])[]): string {
  const body = sections.map((s) => (Array.isArray(s) ? `<div class="pair">${s.map((c) => `<figure>${c}</figure>`).join('')}</div>` : `<figure>${s}</figure>`));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;margin:20px;color:#222}figure{margin:16px 0}li{margin:2px 0}.pair{display:flex;flex-wrap:wrap;gap:24px}.pair figure{margin:8px 0}</style></head>
<body><h1>${escape(title)}</h1><ul>${summary.map((s) => `<li>${escape(s)}</li>`).join('')}</ul>
${body.join('\n')}
</body></html>
`;
}

/** Keeps at most n evenly spaced items (charts of 10,000 steps stay small), always the last. */
export function thin<T>(items: T[], n = 600): T[] {
  if (items.length <= n) return items;
  const step = (items.length - 1) / (n - 1);
  return Array.from({ length: n }, (_, i) => items[Math.round(i * step)]);
}
