// Helpers of the NiiVue pages (case, plan, margin, SIRT): the page's settings, requests with
// the token, NiiVue label tables and options, window and layout buttons. Bundled into
// viewer.js and results.js.
import { SLICE_TYPE, SHOW_RENDER, DRAG_MODE } from "@niivue/niivue";

import { cfg, token, state, withToken, api, keepLinks } from "./_page.js";

export { cfg, token, state, withToken, api, keepLinks };

export function status(text) {
  const el = document.getElementById("status");
  if (el) el.textContent = text;
}

// links and forms keep the token (a GET form drops the page's query: a hidden field)
export function keepToken() {
  for (const a of document.querySelectorAll("a[href^='/']")) {
    a.setAttribute("href", withToken(a.getAttribute("href")));
  }
  if (!token) return;
  for (const f of document.querySelectorAll("form")) {
    const input = document.createElement("input");
    Object.assign(input, { type: "hidden", name: "token", value: token });
    f.appendChild(input);
  }
}

const hex = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));

// A NiiVue label colour table: value -> colour, from 0 to `max` (NiiVue indexes it by
// value: it must end at the volume's largest value); values not listed are transparent.
export function lut(entries, max = null) {
  if (max === null) max = Math.max(1, ...entries.map((e) => e.value));
  const t = { R: [], G: [], B: [], A: [], I: [], labels: [] };
  for (let v = 0; v <= max; v++) {
    const e = entries.find((x) => x.value === v);
    const [r, g, b] = e ? hex(e.color) : [0, 0, 0];
    t.R.push(r);
    t.G.push(g);
    t.B.push(b);
    t.A.push(e && v > 0 ? 255 : 0);
    t.I.push(v);
    t.labels.push(e ? e.name : "");
  }
  return t;
}

// the settings every NiiVue page shares (extra ones merged in)
export function niivueOptions(extra = {}) {
  return Object.assign({
    backColor: [0, 0, 0, 1],
    show3Dcrosshair: true,
    isResizeCanvas: true,
    multiplanarShowRender: SHOW_RENDER.ALWAYS,
    dragMode: DRAG_MODE.contrast,
    logLevel: "error",
    loadingText: "loading...",
    isRadiologicalConvention: true, // patient right on the image left, as ioplan's figures
    crosshairWidth: 1,
    crosshairColor: [0.2, 1, 0.2, 0.8],
  }, extra);
}

export const LPS = (p) => [-p[0], -p[1], p[2]]; // LPS <-> RAS (NiiVue works in RAS mm)

// the CT's settings: grey, soft-tissue window
export function imageOptions() {
  const options = { name: "image.nii.gz", colormap: "gray" };
  if (cfg.modality === "CT") {
    const [w, l] = cfg.windows["soft tissue"];
    Object.assign(options, { cal_min: l - w / 2, cal_max: l + w / 2, trustCalMinMax: false });
  }
  return options;
}

export function windowImage(nv, image) {
  if (cfg.modality !== "CT") return;
  const [w, l] = cfg.windows["soft tissue"];
  image.cal_min = l - w / 2;
  image.cal_max = l + w / 2;
}

export function setupControls(nv, image, reset) {
  for (const b of document.querySelectorAll("button[data-window]")) {
    b.addEventListener("click", () => {
      const [w, l] = b.dataset.window.split(",").map(Number);
      image.cal_min = l - w / 2;
      image.cal_max = l + w / 2;
      nv.updateGLVolume();
    });
  }
  const layouts = { multi: SLICE_TYPE.MULTIPLANAR, axial: SLICE_TYPE.AXIAL, render: SLICE_TYPE.RENDER };
  for (const b of document.querySelectorAll("button[data-layout]")) {
    b.addEventListener("click", () => nv.setSliceType(layouts[b.dataset.layout]));
  }
  const r = document.getElementById("reset");
  if (r) r.addEventListener("click", reset);
}
