// The ioplan viewer: NiiVue over the ioplan web API. Pages: a case, a plan (with editing).
// Settings come from the page's JSON block (#ioplan-config); a token given as ?token= in
// the page's address is passed on to every request.
import { Niivue, SLICE_TYPE } from "@niivue/niivue";
import { cfg, state, api, keepLinks, withToken, status, lut, LPS, setupControls, niivueOptions } from "./_common.js";

Object.assign(state, { previews: 0, charts: 0, lastPreview: null, lastChart: null, job: null });

keepLinks();

async function addVolume(nv, url, options, labelTable) {
  const vol = await nv.addVolumeFromUrl(Object.assign({ url: withToken(url) }, options));
  if (labelTable) {
    vol.setColormapLabel(labelTable);
    nv.updateGLVolume();
  }
  return vol;
}

// the reset button: window, pan/zoom, 3D angle, crosshair and layout as loaded
function resetView(nv, image, defaults) {
  image.cal_min = defaults.cal_min;
  image.cal_max = defaults.cal_max;
  nv.scene.pan2Dxyzmm = [0, 0, 0, 1];
  nv.setRenderAzimuthElevation(110, 15);
  nv.scene.crosshairPos = defaults.crosshair.slice();
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  nv.updateGLVolume();
}

async function start() {
  const nv = new Niivue(niivueOptions());
  window.ioplan.nv = nv;
  await nv.attachTo("gl");
  const base = `/api/cases/${encodeURIComponent(cfg.case)}`;
  const [w, l] = cfg.modality === "CT" ? cfg.windows["soft tissue"] : [0, 0];
  const imageOptions = { name: "image.nii.gz", colormap: "gray" };
  if (cfg.modality === "CT") Object.assign(imageOptions, { cal_min: l - w / 2, cal_max: l + w / 2, trustCalMinMax: false });
  status("loading the images...");
  const labelInfo = await api("/api/labels");
  const one = (color, name) => [{ value: 1, color, name }];
  // every volume in one call: NiiVue fetches them together and uploads them once
  const list = [[`${base}/volumes/image.nii.gz`, imageOptions, null]];
  if (cfg.page === "case") {
    list.push([`${base}/volumes/labels.nii.gz`, { name: "labels.nii.gz", opacity: 0.45 }, labelInfo]);
  } else {
    const keep = ["tumor", "portal_vein", "hepatic_vein", "hepatic_artery", "ivc", "bile_duct"];
    const shown = labelInfo.filter((e) => keep.includes(e.name)).map((e) =>
      e.name === "tumor" ? Object.assign({}, e, { color: "#00cc00" }) : e);
    const p = `${base}/plan/volumes`;
    list.push(
      [`${base}/volumes/labels.nii.gz`, { name: "labels.nii.gz", opacity: 0.6 }, shown],
      [`${p}/margin_shell.nii.gz`, { name: "margin_shell.nii.gz", opacity: 0.35 }, one("#ffff00", "margin")],
      [`${p}/zone.nii.gz`, { name: "zone.nii.gz", opacity: 0.4 }, one("#ff3333", "zone")],
      [`${p}/trajectories.nii.gz`, { name: "trajectories.nii.gz", opacity: 1.0 }, one("#00ffff", "needle")],
    );
    if (cfg.isotherms && cfg.isotherms.length) {
      list.push([`${p}/isotherms.nii.gz`, { name: "isotherms.nii.gz", opacity: 0.9 }, cfg.isotherms]);
    }
  }
  await nv.loadVolumes(list.map(([url, options]) => Object.assign({ url: withToken(url) }, options)));
  const image = nv.volumes[0];
  list.forEach(([, , table], i) => {
    if (!table) return;
    const vol = nv.volumes[i];
    const top = Math.max(1, Math.round(vol.global_max ?? vol.cal_max ?? 1));
    vol.setColormapLabel(lut(table, top));
  });
  if (cfg.modality === "CT") {
    image.cal_min = l - w / 2;
    image.cal_max = l + w / 2;
  }
  nv.updateGLVolume();
  if (cfg.page === "plan" && cfg.applicators.length) {
    nv.scene.crosshairPos = nv.mm2frac(LPS(cfg.applicators[0].tip_mm));
  }
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  const defaults = { cal_min: image.cal_min, cal_max: image.cal_max, crosshair: nv.scene.crosshairPos.slice() };
  setupControls(nv, image, () => resetView(nv, image, defaults));
  nv.drawScene();
  if (cfg.page === "plan") {
    const iso = nv.volumes[list.findIndex(([u]) => u.endsWith("/isotherms.nii.gz"))];
    const box = document.getElementById("show-isotherms");
    if (iso && box) {
      box.addEventListener("change", () => {
        iso.opacity = box.checked ? 0.9 : 0.0;
        nv.updateGLVolume();
      });
    }
    setupEditor(nv, base);
  }
  status("");
  state.ready = true;
}

// ---- plan editing: move needles, change power/time; the zone follows ---------------------
function setupEditor(nv, base) {
  const box = document.getElementById("editor");
  const apps = cfg.applicators.map((a) =>
    Object.assign({}, a, { tip_mm: a.tip_mm.slice(), entry_mm: a.entry_mm ? a.entry_mm.slice() : null }));
  state.applicators = apps;
  let selected = 0;
  let dragging = false;
  let previewVolume = null;
  let timer = null;
  let running = false;
  let again = false;

  const field = (i, key, label, value) =>
    `<label>${label} <input data-i="${i}" data-key="${key}" type="number" step="any" value="${value ?? ""}"></label> `;
  box.innerHTML =
    "<h3>Edit</h3>" +
    apps.map((a, i) =>
      `<div class="app"><label><input type="radio" name="sel" value="${i}" ${i === 0 ? "checked" : ""}> #${i + 1}</label> ` +
      (a.protocol ? `protocol ${a.protocol} ` : field(i, "power_w", "W", a.power_w) + field(i, "duration_s", "s", a.duration_s)) +
      `<br>tip ${[0, 1, 2].map((k) => field(i, `tip${k}`, "xyz"[k], a.tip_mm[k])).join("")}` +
      (a.entry_mm ? `<br>entry ${[0, 1, 2].map((k) => field(i, `entry${k}`, "xyz"[k], a.entry_mm[k])).join("")}` : "") +
      "</div>").join("") +
    '<label><input type="checkbox" id="drag"> drag the selected</label> ' +
    '<select id="drag-what"><option value="tip_mm">tip</option><option value="entry_mm">entry</option></select>' +
    ' with the crosshair<br>' +
    '<button id="tip-here">tip to crosshair</button><button id="entry-here">entry to crosshair</button>' +
    '<button id="preview">update zone</button>' +
    '<button id="verify">verify selected (2 mm job)</button><button id="cancel" disabled>cancel</button>' +
    '<progress id="job-progress" max="1" value="0"></progress><div id="edit-status"></div>';

  const editStatus = (t) => { document.getElementById("edit-status").textContent = t; };

  function settings() {
    return apps.map((a) => ({
      applicator: a.id,
      power_w: a.protocol ? null : a.power_w,
      duration_s: a.protocol ? null : a.duration_s,
      protocol: a.protocol || null,
      needles: [{ tip_mm: a.tip_mm, entry_mm: a.entry_mm }],
    }));
  }

  // the zone of the edited settings: first the manufacturer's chart (an ellipsoid, at
  // once), then the engine on a 4 mm grid (seconds), which replaces it
  let chartVersion = 0;
  let engineVersion = 0;
  async function showZone(doc, color, version, isCurrent) {
    const vol = await addVolume(nv, doc.zone_url, { name: "preview.nii.gz", opacity: 0.5 },
      lut([{ value: 1, color, name: "edited zone" }, { value: 2, color: "#00ffff", name: "needle" }]));
    if (!isCurrent(version)) { nv.removeVolume(vol); return false; }
    if (previewVolume) nv.removeVolume(previewVolume);
    previewVolume = vol;
    return true;
  }
  async function runChart() {
    const version = ++chartVersion;
    const body = { settings: settings(), spacing_mm: 2.0, method: "chart" };
    if (body.settings.some((s) => s.protocol)) return; // no chart for cryo protocols
    try {
      const doc = await api(`${base}/preview`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      state.charts += 1;
      state.lastChart = doc;
      // shown only while no engine zone of these settings has come
      const current = (v) => v === chartVersion && engineVersion < v;
      if (await showZone(doc, "#aa66ff", version, current)) {
        editStatus(`chart estimate ${doc.zone_volume_ml.toFixed(1)} mL; simulating...`);
      }
    } catch (e) {
      editStatus(`chart: ${e.message || e}`);
    }
  }
  async function runPreview() {
    if (running) { again = true; return; }
    running = true;
    const version = chartVersion;
    const t0 = performance.now();
    try {
      const doc = await api(`${base}/preview`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ settings: settings(), spacing_mm: 4.0 }),
      });
      engineVersion = version;
      await showZone(doc, "#ff00ff", version, () => true);
      state.previews += 1;
      state.lastPreview = doc;
      editStatus(`edited zone ${doc.zone_volume_ml.toFixed(1)} mL (engine, 4 mm, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      state.error = String(e.message || e);
      editStatus(`error: ${state.error}`);
    }
    running = false;
    if (again) { again = false; runPreview(); }
  }
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { runChart(); runPreview(); }, 300);
  };
  window.ioplan.preview = runPreview;

  // which: "tip_mm" or "entry_mm" (the needle's skin entry; the path is entry -> tip)
  function showPoint(i, which) {
    const prefix = which === "tip_mm" ? "tip" : "entry";
    for (let k = 0; k < 3; k++) {
      const el = box.querySelector(`input[data-i="${i}"][data-key="${prefix}${k}"]`);
      if (el) el.value = apps[i][which][k].toFixed(1);
    }
  }
  function pointToCrosshair(which) {
    if (!apps[selected][which]) return;
    const ras = nv.frac2mm(nv.scene.crosshairPos);
    apps[selected][which] = LPS([ras[0], ras[1], ras[2]]);
    showPoint(selected, which);
    schedule();
  }
  const tipToCrosshair = () => pointToCrosshair("tip_mm");

  box.addEventListener("change", (ev) => {
    const t = ev.target;
    if (t.name === "sel") { selected = Number(t.value); return; }
    if (!t.dataset.key) return;
    const i = Number(t.dataset.i);
    const v = Number(t.value);
    if (!Number.isFinite(v)) return;
    const key = t.dataset.key;
    if (key.startsWith("tip")) apps[i].tip_mm[Number(key[3])] = v;
    else if (key.startsWith("entry")) apps[i].entry_mm[Number(key[5])] = v;
    else apps[i][key] = v;
    schedule();
  });
  document.getElementById("drag").addEventListener("change", (ev) => { dragging = ev.target.checked; });
  const dragWhat = document.getElementById("drag-what");
  document.getElementById("tip-here").addEventListener("click", tipToCrosshair);
  document.getElementById("entry-here").addEventListener("click", () => pointToCrosshair("entry_mm"));
  document.getElementById("preview").addEventListener("click", runPreview);
  nv.onLocationChange = () => { if (dragging) pointToCrosshair(dragWhat.value); };

  // the verified simulation: a job with progress streamed, cancellable
  const verify = document.getElementById("verify");
  const cancel = document.getElementById("cancel");
  const bar = document.getElementById("job-progress");
  verify.addEventListener("click", async () => {
    const s = settings()[selected];
    try {
      const job = await api(`${base}/simulate`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign(s, { spacing_mm: 2.0 })),
      });
      state.job = job;
      cancel.disabled = false;
      const events = new EventSource(withToken(`/api/jobs/${job.id}/events`));
      const onDoc = (ev) => {
        const doc = JSON.parse(ev.data);
        state.job = doc;
        bar.value = doc.progress;
        editStatus(`job ${doc.state}: ${doc.message || doc.error || ""}`);
        if (ev.type === "end") {
          events.close();
          cancel.disabled = true;
          if (doc.state === "done") {
            editStatus(`verified zone (2 mm): ${doc.result.zone.volume_ml.toFixed(1)} mL`);
            addVolume(nv, `/api/jobs/${doc.id}/zone.nii.gz`, { name: "verified.nii.gz", opacity: 0.4 },
              lut([{ value: 1, color: "#ff8800", name: "verified zone" }]));
          }
        }
      };
      events.addEventListener("progress", onDoc);
      events.addEventListener("end", onDoc);
    } catch (e) {
      editStatus(`error: ${e.message || e}`);
    }
  });
  cancel.addEventListener("click", async () => {
    if (state.job) await api(`/api/jobs/${state.job.id}`, { method: "DELETE" });
  });
}

if (cfg.page === "case" || cfg.page === "plan") {
  start().catch((e) => {
    state.error = String(e.message || e);
    status(`viewer error: ${state.error}`);
  });
}
