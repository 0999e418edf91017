// The cumulative DVH as a plain SVG chart: one path per structure, axes in Gy and %.
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// a "nice" step for about n ticks over [0, top]
function step(top, n) {
  const raw = top / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
}

export function drawDvh(svg, dvh, colours) {
  const W = Number(svg.getAttribute("width"));
  const H = Number(svg.getAttribute("height"));
  const m = { left: 44, right: 10, top: 10, bottom: 36 };
  const w = W - m.left - m.right;
  const h = H - m.top - m.bottom;
  const dose = dvh.dose_gy;
  const top = dose[dose.length - 1] || 1;
  const x = (d) => m.left + (w * d) / top;
  const y = (v) => m.top + h * (1 - v / 100);
  svg.replaceChildren();
  svg.appendChild(el("rect", { x: 0, y: 0, width: W, height: H, fill: "#181818" }));
  const axes = el("g", { class: "axes", stroke: "#666", "font-size": 10, fill: "#bbb" });
  const sx = step(top, 6);
  for (let d = 0; d <= top + 1e-9; d += sx) {
    axes.appendChild(el("line", { x1: x(d), x2: x(d), y1: m.top, y2: m.top + h, "stroke-opacity": 0.4 }));
    axes.appendChild(el("text", { x: x(d), y: m.top + h + 12, "text-anchor": "middle", stroke: "none" }, `${+d.toFixed(1)}`));
  }
  for (let v = 0; v <= 100; v += 20) {
    axes.appendChild(el("line", { x1: m.left, x2: m.left + w, y1: y(v), y2: y(v), "stroke-opacity": 0.4 }));
    axes.appendChild(el("text", { x: m.left - 4, y: y(v) + 3, "text-anchor": "end", stroke: "none" }, `${v}`));
  }
  axes.appendChild(el("text", { x: m.left + w / 2, y: H - 6, "text-anchor": "middle", stroke: "none" }, "dose (Gy)"));
  axes.appendChild(el("text", { x: 10, y: m.top + h / 2, "text-anchor": "middle", stroke: "none",
    transform: `rotate(-90 10 ${m.top + h / 2})` }, "volume (%)"));
  svg.appendChild(axes);
  let row = 0;
  for (const [name, vol] of Object.entries(dvh.volume_percent)) {
    const colour = colours[name] || "#888888";
    const d = vol.map((v, i) => `${i ? "L" : "M"}${x(dose[i]).toFixed(1)},${y(v).toFixed(1)}`).join("");
    svg.appendChild(el("path", { class: "curve", "data-structure": name, d, fill: "none", stroke: colour, "stroke-width": 2 }));
    const ly = m.top + 12 + 14 * row++;
    svg.appendChild(el("line", { x1: m.left + w - 110, x2: m.left + w - 94, y1: ly - 3, y2: ly - 3, stroke: colour, "stroke-width": 2 }));
    svg.appendChild(el("text", { x: m.left + w - 90, y: ly, fill: "#ddd", "font-size": 11 }, name));
  }
}
