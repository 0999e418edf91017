// Drawing of the live page: the temperature map with its colour bar, contours, the plot.
// Plain 2D canvas: a 64 x 64 slice is coloured pixel by pixel into a small canvas, which
// is scaled onto the visible one (no smoothing), then the contours are drawn as edges.

// Colour map (jet-like): 0 -> dark blue, 0.5 -> green, 1 -> dark red; 256 RGB entries.
export const LUT = (() => {
  const t = new Uint8ClampedArray(256 * 3);
  const c = (v) => Math.max(0, Math.min(1, v));
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    t[3 * i] = 255 * c(1.5 - Math.abs(4 * x - 3));
    t[3 * i + 1] = 255 * c(1.5 - Math.abs(4 * x - 2));
    t[3 * i + 2] = 255 * c(1.5 - Math.abs(4 * x - 1));
  }
  return t;
})();

export function decodeF32(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

export function decodeU8(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

// The edges between pixels inside ``mask`` and outside it, as one path on a canvas of
// ``scale`` pixels per voxel.
export function outline(mask, rows, cols, scale) {
  const path = new Path2D();
  const inside = (r, c) => r >= 0 && c >= 0 && r < rows && c < cols && mask[r * cols + c];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (!mask[r * cols + c]) continue;
      const x = c * scale;
      const y = r * scale;
      if (!inside(r - 1, c)) { path.moveTo(x, y); path.lineTo(x + scale, y); }
      if (!inside(r + 1, c)) { path.moveTo(x, y + scale); path.lineTo(x + scale, y + scale); }
      if (!inside(r, c - 1)) { path.moveTo(x, y); path.lineTo(x, y + scale); }
      if (!inside(r, c + 1)) { path.moveTo(x + scale, y); path.lineTo(x + scale, y + scale); }
    }
  }
  return path;
}

// One frame: temperature (degC) coloured over [lo, hi], the necrosis contour (CEM43 >=
// threshold) in white, the structure at risk (a Path2D, or null) in green.
export function drawMap(canvas, small, temp, cem, rows, cols, range, necrosisMin, atRisk) {
  if (small.width !== cols || small.height !== rows) {
    small.width = cols;
    small.height = rows;
  }
  const sctx = small.getContext("2d");
  const img = sctx.createImageData(cols, rows);
  const [lo, hi] = range;
  const k = 255 / (hi - lo);
  const px = img.data;
  for (let i = 0; i < temp.length; i++) {
    const v = temp[i];
    const j = Number.isFinite(v) ? 3 * Math.max(0, Math.min(255, Math.round((v - lo) * k))) : 0;
    px[4 * i] = LUT[j];
    px[4 * i + 1] = LUT[j + 1];
    px[4 * i + 2] = LUT[j + 2];
    px[4 * i + 3] = 255;
  }
  sctx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  const scale = canvas.width / cols;
  const mask = new Uint8Array(cem.length);
  let necrotic = 0;
  for (let i = 0; i < cem.length; i++) {
    if (cem[i] >= necrosisMin) {
      mask[i] = 1;
      necrotic++;
    }
  }
  ctx.lineWidth = 2;
  if (atRisk) {
    ctx.strokeStyle = "#00ff00";
    ctx.stroke(atRisk);
  }
  if (necrotic) {
    ctx.strokeStyle = "#ffffff";
    ctx.stroke(outline(mask, rows, cols, scale));
  }
  return necrotic;
}

export function drawColourBar(canvas, range, alertC) {
  const ctx = canvas.getContext("2d");
  const h = canvas.height;
  const top = 10;
  const bar = h - 2 * top;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, h);
  for (let y = 0; y < bar; y++) {
    const j = 3 * Math.round(255 * (1 - y / (bar - 1)));
    ctx.fillStyle = `rgb(${LUT[j]},${LUT[j + 1]},${LUT[j + 2]})`;
    ctx.fillRect(0, top + y, 20, 1);
  }
  const [lo, hi] = range;
  const at = (v) => top + bar * (1 - (v - lo) / (hi - lo));
  ctx.fillStyle = "#ddd";
  ctx.font = "12px sans-serif";
  for (let v = Math.ceil(lo / 10) * 10; v <= hi; v += 10) {
    ctx.fillRect(20, at(v), 5, 1);
    ctx.fillText(`${v}`, 28, at(v) + 4);
  }
  ctx.fillStyle = "#ff6";
  ctx.fillRect(0, at(alertC), 26, 2);
  ctx.fillText(`${alertC} alert`, 28, at(alertC) + 4);
  ctx.fillStyle = "#ddd";
  ctx.fillText("°C", 28, top + bar + 8);
}

// Max temperature against scan time; the alert limit dashed.
export function drawPlot(canvas, times, values, alertC) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const left = 40;
  const bottom = 20;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, w, h);
  const tMax = Math.max(10, times.length ? times[times.length - 1] : 0);
  const tMin = times.length ? times[0] : 0;
  const vMax = Math.max(alertC + 5, ...values.filter(Number.isFinite)) + 2;
  const vMin = 35;
  const x = (t) => left + ((t - tMin) / Math.max(1e-9, tMax - tMin)) * (w - left - 10);
  const y = (v) => (h - bottom) * (1 - (v - vMin) / (vMax - vMin));
  ctx.strokeStyle = "#555";
  ctx.fillStyle = "#aaa";
  ctx.font = "11px sans-serif";
  for (let v = 40; v < vMax; v += 10) {
    ctx.beginPath();
    ctx.moveTo(left, y(v));
    ctx.lineTo(w, y(v));
    ctx.stroke();
    ctx.fillText(`${v}`, 5, y(v) + 4);
  }
  ctx.fillText(`scan time ${tMin.toFixed(0)}-${tMax.toFixed(0)} s; max temperature (°C)`, left, h - 5);
  ctx.setLineDash([5, 4]);
  ctx.strokeStyle = "#ff6";
  ctx.beginPath();
  ctx.moveTo(left, y(alertC));
  ctx.lineTo(w, y(alertC));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = "#f84";
  ctx.lineWidth = 2;
  ctx.beginPath();
  times.forEach((t, i) => (i ? ctx.lineTo(x(t), y(values[i])) : ctx.moveTo(x(t), y(values[i]))));
  ctx.stroke();
  ctx.lineWidth = 1;
}
