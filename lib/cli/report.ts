/** report.html: self-contained SVG line charts (no scripts, no network). */

export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
}

const label = (v: number, log: boolean) => (log ? (10 ** v).toExponential(0) : Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : +v.toFixed(3) + '');

/**
 * One line chart as an SVG element. Non-finite y values break the line (and are marked with a
 * red tick at the top when `markNonFinite`); logY plots log10(y) for y > 0.
 */
export function lineChart(title: string, xLabel: string, series: Series[], options: { logY?: boolean; markNonFinite?: boolean } = {}): string {
  const W = 640, H = 300, L = 64, R = 150, T = 30, B = 40;
  const tf = (y: number) => (options.logY ? (y > 0 ? Math.log10(y) : NaN) : y);
  const finite = series.flatMap((s) => s.points.map(([x, y]) => [x, tf(y)])).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const ys = finite.map((p) => p[1]);
  const allX = series.flatMap((s) => s.points.map((p) => p[0]));
  const x0 = Math.min(...allX, 0), x1 = Math.max(...allX, 1);
  let y0 = ys.length ? Math.min(...ys) : 0, y1 = ys.length ? Math.max(...ys) : 1;
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const px = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<text x="${L}" y="18" font-size="14" font-weight="bold">${escape(title)}</text>`);
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`);
  for (const v of ticks(y0, y1)) parts.push(`<text x="${L - 6}" y="${py(v) + 4}" font-size="10" text-anchor="end">${label(v, !!options.logY)}</text><line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#eee"/>`);
  for (const v of ticks(x0, x1)) parts.push(`<text x="${px(v)}" y="${H - B + 14}" font-size="10" text-anchor="middle">${Math.round(v)}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="11" text-anchor="middle">${escape(xLabel)}</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = '', pen = false;
    for (const [x, y] of s.points) {
      const v = tf(y);
      if (!Number.isFinite(v)) {
        pen = false;
        if (options.markNonFinite) parts.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${T}" y2="${T + 6}" stroke="${color}"/>`);
        continue;
      }
      d += `${pen ? 'L' : 'M'}${px(x).toFixed(1)},${py(v).toFixed(1)}`;
      pen = true;
    }
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    if (s.points.length <= 30) for (const [x, y] of s.points) if (Number.isFinite(tf(y))) parts.push(`<circle cx="${px(x)}" cy="${py(tf(y))}" r="2.5" fill="${color}"/>`);
    parts.push(`<rect x="${W - R + 10}" y="${T + i * 16}" width="10" height="10" fill="${color}"/><text x="${W - R + 24}" y="${T + i * 16 + 9}" font-size="11">${escape(s.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">${parts.join('')}</svg>`;
}

/** A whole report page: a title, a summary list, and the charts. */
export function reportPage(title: string, summary: string[], charts: string[]): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}figure{margin:16px 0}li{margin:2px 0}</style></head>
<body><h1>${escape(title)}</h1><ul>${summary.map((s) => `<li>${escape(s)}</li>`).join('')}</ul>
${charts.map((c) => `<figure>${c}</figure>`).join('\n')}
</body></html>
`;
}

/** Keeps at most n evenly spaced items (charts of 10,000 steps stay small). */
export function thin<T>(items: T[], n = 600): T[] {
  if (items.length <= n) return items;
  const step = items.length / n;
  return Array.from({ length: n }, (_, i) => items[Math.floor(i * step)]);
}
