// A daily spend bar chart, drawn as SVG by hand: one bar per UTC day, a few
// gridlines, and each bar's exact amount in its tooltip. Only geometry uses
// floats; every amount shown as text is the API's exact string. Colours
// come from app.css (no inline styles under the page's CSP).

import { usd, count } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 960;
const H = 220;
const M = { top: 12, right: 8, bottom: 26, left: 78 };

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A round step near `raw`: 1, 2 or 5 times a power of ten. */
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

function tickLabel(v, step) {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  return `$${v.toFixed(Math.min(decimals, 12))}`;
}

/**
 * Draws `days` ([{date: "YYYY-MM-DD", usd: "0.0123...", requests: n}],
 * every day of the range, oldest first) into `container`.
 */
export function dailyChart(container, days, title) {
  container.replaceChildren();
  const svg = el('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': title,
    class: 'chart-svg',
  });
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const values = days.map((d) => Number(d.usd));
  const max = Math.max(0, ...values);
  const ticks = 4;
  const step = max > 0 ? niceStep(max / ticks) : 1;
  const top = max > 0 ? step * Math.ceil(max / step) : 1;
  const y = (v) => M.top + plotH - (v / top) * plotH;

  if (max > 0) {
    for (let v = 0; v <= top + step / 2; v += step) {
      svg.append(el('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: 'grid' }));
      svg.append(el('text', { x: M.left - 8, y: y(v) + 4, class: 'axis y' }, tickLabel(v, step)));
    }
  }
  svg.append(el('line', { x1: M.left, x2: W - M.right, y1: y(0), y2: y(0), class: 'baseline' }));

  const n = Math.max(days.length, 1);
  const slot = plotW / n;
  const barW = Math.max(1, Math.min(48, slot * 0.7));
  const every = Math.ceil(n / 12);
  days.forEach((d, i) => {
    const x = M.left + i * slot + (slot - barW) / 2;
    const v = values[i];
    if (v > 0) {
      const h = Math.max(1, y(0) - y(v));
      const bar = el('rect', { x, y: y(0) - h, width: barW, height: h, class: 'bar', 'data-date': d.date });
      bar.append(el('title', {}, `${d.date}: ${usd(d.usd)} (${count(d.requests)} requests)`));
      svg.append(bar);
    }
    if (i % every === 0) {
      svg.append(el('text', { x: M.left + i * slot + slot / 2, y: H - 8, class: 'axis x' }, d.date.slice(5)));
    }
  });
  if (max === 0) {
    svg.append(el('text', { x: M.left + plotW / 2, y: M.top + plotH / 2, class: 'empty' }, 'No spend in this range'));
  }
  container.append(svg);
}
