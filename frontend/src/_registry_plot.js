// Step-function plots in SVG for the registry dashboard (no library): Kaplan-Meier and
// cumulative incidence curves with their 95 % bands, censoring ticks, and the numbers at
// risk under the time axis. Input: one figure of GET /api/registry/curves
// ({ticks_months, curves: [{key, label, time_months, estimate, ci_low, ci_high, at_risk,
// censored_months?, censored_estimate?}]}). Each value holds from its time to the next.

const NS = "http://www.w3.org/2000/svg";
const SHORT = { os: "overall", ltp_free: "LTP-free", ltp: "LTP", distant: "distant" };
export const COLOURS = { os: "#4ea1ff", ltp_free: "#ff9f40", ltp: "#ff5a5a", distant: "#5ad17a" };

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

const fmt = (v) => (Math.round(v * 100) / 100).toString();

// "M x0 y0 H x1 V y1 H x2 ..." of a right-continuous step function, up to xEnd.
export function stepPath(times, values, sx, sy, xEnd) {
  let d = "";
  let last = null;
  for (let i = 0; i < times.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      last = null; // an undefined stretch (a band before its first event): a gap
      continue;
    }
    const x = sx(times[i]);
    const y = sy(v);
    if (last === null) d += `M${fmt(x)} ${fmt(y)}`;
    else d += `H${fmt(x)}V${fmt(y)}`;
    last = v;
  }
  if (last !== null) d += `H${fmt(sx(xEnd))}`;
  return d;
}

// The band between two step functions, as one closed polygon per defined stretch.
function bandPath(times, low, high, sx, sy, xEnd) {
  const parts = [];
  let run = [];
  const flush = () => {
    if (run.length) parts.push(run);
    run = [];
  };
  for (let i = 0; i < times.length; i++) {
    if (low[i] === null || high[i] === null) flush();
    else run.push(i);
  }
  flush();
  return parts
    .map((idx) => {
      // each value holds until the next time; the last one ends where the curve ends
      const end = (k) => (idx[k] + 1 < times.length ? times[idx[k] + 1] : xEnd);
      let top = "";
      let bottom = "";
      idx.forEach((i, k) => {
        const x0 = fmt(sx(times[i]));
        const x1 = fmt(sx(end(k)));
        top += `${k ? "L" : "M"}${x0} ${fmt(sy(high[i]))}L${x1} ${fmt(sy(high[i]))}`;
        bottom = `L${x1} ${fmt(sy(low[i]))}L${x0} ${fmt(sy(low[i]))}` + bottom;
      });
      return `${top}${bottom}Z`;
    })
    .join("");
}

// An SVG plot of ``figure``; ``yMax`` the top of the probability axis (1 for survival).
export function plotFigure(figure, { yMax = 1, yLabel = "probability", width = 700 } = {}) {
  const curves = figure.curves;
  const ticks = figure.ticks_months;
  const rowH = 16;
  const m = { left: 150, right: 20, top: 14, bottom: 42 + rowH * (curves.length + 1) };
  const plotH = 260;
  const height = m.top + plotH + m.bottom;
  const xMax = ticks[ticks.length - 1] || 1;
  const sx = (t) => m.left + ((width - m.left - m.right) * t) / xMax;
  const sy = (v) => m.top + plotH * (1 - Math.min(v, yMax) / yMax);
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "font-size": 11, fill: "#ddd", "font-family": "system-ui,sans-serif" }); // prettier-ignore
  // axes and grid
  const grid = el("g", { stroke: "#333", "stroke-width": 1 });
  const yStep = yMax <= 0.6 ? 0.1 : yMax === 1 ? 0.25 : 0.2;
  for (let i = 0; i <= Math.round(yMax / yStep); i++) {
    const v = yStep * i;
    grid.appendChild(el("line", { x1: m.left, x2: width - m.right, y1: sy(v), y2: sy(v) }));
    svg.appendChild(el("text", { x: m.left - 6, y: sy(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  for (const t of ticks) {
    grid.appendChild(el("line", { x1: sx(t), x2: sx(t), y1: m.top, y2: m.top + plotH }));
    svg.appendChild(el("text", { x: sx(t), y: m.top + plotH + 14, "text-anchor": "middle" }, `${t}`));
  }
  svg.appendChild(grid);
  svg.appendChild(el("text", { x: (m.left + width - m.right) / 2, y: m.top + plotH + 30,
    "text-anchor": "middle" }, "months")); // prettier-ignore
  svg.appendChild(el("text", { x: 14, y: m.top + plotH / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${m.top + plotH / 2})` }, yLabel)); // prettier-ignore
  // curves: band, step line, censoring ticks
  curves.forEach((c, k) => {
    const colour = COLOURS[c.key] || "#ccc";
    const g = el("g", { "data-curve": c.key });
    const last = Math.max(...c.time_months);
    g.appendChild(el("path", { class: "band", d: bandPath(c.time_months, c.ci_low, c.ci_high, sx, sy, last),
      fill: colour, "fill-opacity": 0.15, stroke: "none" })); // prettier-ignore
    const line = el("path", { class: "step", "data-curve": c.key, fill: "none", stroke: colour,
      "stroke-width": 2, d: stepPath(c.time_months, c.estimate, sx, sy, last) }); // prettier-ignore
    line.appendChild(el("title", {}, `${c.label} (${c.unit}): n ${c.n}, events ${c.events}`));
    g.appendChild(line);
    if (c.censored_months) {
      const marks = el("g", { class: "censored", stroke: colour, "stroke-width": 1.5 });
      c.censored_months.forEach((t, i) => {
        const x = sx(t);
        const y = sy(c.censored_estimate[i]);
        marks.appendChild(el("line", { x1: x, x2: x, y1: y - 4, y2: y + 4 }));
      });
      g.appendChild(marks);
    }
    svg.appendChild(g);
    // legend
    const ly = m.top + 10 + 16 * k;
    svg.appendChild(el("line", { x1: width - m.right - 250, x2: width - m.right - 230, y1: ly, y2: ly,
      stroke: colour, "stroke-width": 3 })); // prettier-ignore
    svg.appendChild(el("text", { x: width - m.right - 224, y: ly + 4 }, `${c.label} (${c.unit})`));
  });
  // numbers at risk, one row per curve
  const top = m.top + plotH + 46;
  svg.appendChild(el("text", { x: 4, y: top, "font-weight": "bold" }, "at risk"));
  curves.forEach((c, k) => {
    const y = top + rowH * (k + 1);
    const row = el("g", { class: "at-risk", "data-curve": c.key, fill: COLOURS[c.key] || "#ccc" });
    row.appendChild(el("text", { x: 4, y }, SHORT[c.key] || c.key));
    ticks.forEach((t, i) => {
      row.appendChild(el("text", { x: sx(t), y, "text-anchor": "middle" }, `${c.at_risk[i]}`));
    });
    svg.appendChild(row);
  });
  return svg;
}

// Top of the incidence axis: the highest upper bound, rounded up to 0.2 (at least 0.2).
export function incidenceTop(figure) {
  let top = 0;
  for (const c of figure.curves) for (const v of [...c.estimate, ...c.ci_high]) if (v !== null) top = Math.max(top, v);
  return Math.min(1, Math.max(0.2, (2 * Math.ceil(top * 5 - 1e-9)) / 10));
}
