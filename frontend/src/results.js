// The result pages: margin confirmation (tumour surface coloured by margin, the closest
// point) and SIRT dose (dose map over the CT, the DVH chart). Settings come from the
// page's JSON block (#ioplan-config); the tables are rendered by the server.
import { Niivue, SLICE_TYPE } from "@niivue/niivue";
import { cfg, state, withToken, status, keepToken, lut, LPS, imageOptions, windowImage, setupControls, niivueOptions } from "./_common.js";
import { drawDvh } from "./_results_dvh.js";

// 2D zoom of the margin page's slices, about the closest point
const MARGIN_ZOOM = 3;

// NiiVue zooms 2D slices about the point pan + zoom * mm: from no pan at zoom 1, the point
// `ras` (mm) stays where it is when the pan is (1 - zoom) * ras
function zoomAt(nv, ras, zoom) {
  nv.setPan2Dxyzmm([(1 - zoom) * ras[0], (1 - zoom) * ras[1], (1 - zoom) * ras[2], zoom]);
}

function viewer() {
  const nv = new Niivue(niivueOptions({
    crosshairGap: 12, // the closest point's marker stays visible under the crosshair
  }));
  window.ioplan.nv = nv;
  return nv;
}

async function marginPage() {
  const nv = viewer();
  await nv.attachTo("gl");
  const base = `/api/cases/${encodeURIComponent(cfg.case)}`;
  status("loading the images...");
  const list = [
    [`${base}/volumes/image.nii.gz`, imageOptions(), null],
    [`${base}/margin/zone.nii.gz?${cfg.query}`, { name: "zone.nii.gz", opacity: 0.2 },
      [{ value: 1, color: cfg.zone_color, name: "ablation zone" }]],
    [`${base}/margin/surface.nii.gz?${cfg.query}`, { name: "surface.nii.gz", opacity: 1.0 }, cfg.classes],
  ];
  await nv.loadVolumes(list.map(([url, options]) => Object.assign({ url: withToken(url) }, options)));
  list.forEach(([, , table], i) => {
    if (!table) return;
    const vol = nv.volumes[i];
    const top = Math.max(1, Math.round(vol.global_max ?? vol.cal_max ?? 1));
    vol.setColormapLabel(lut(table, top));
  });
  const image = nv.volumes[0];
  windowImage(nv, image);
  nv.updateGLVolume();
  // the slices through the closest point, zoomed on it (the tumour is a few cm across)
  const closest = nv.mm2frac(LPS(cfg.closest_point_mm));
  const view = () => {
    nv.scene.crosshairPos = closest.slice();
    zoomAt(nv, LPS(cfg.closest_point_mm), MARGIN_ZOOM);
    nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  };
  view();
  const window0 = [image.cal_min, image.cal_max];
  setupControls(nv, image, () => {
    [image.cal_min, image.cal_max] = window0;
    view();
    nv.updateGLVolume();
  });
  nv.drawScene();
}

async function sirtPage() {
  drawDvh(document.getElementById("dvh"), cfg.dvh, cfg.colours);
  state.dvhCurves = document.querySelectorAll("#dvh path.curve").length;
  const nv = viewer();
  nv.opts.isColorbar = true;
  await nv.attachTo("gl");
  const base = `/api/cases/${encodeURIComponent(cfg.case)}`;
  status("loading the images...");
  const [lo, hi] = cfg.dose_range_gy;
  await nv.loadVolumes([
    Object.assign({ url: withToken(`${base}/volumes/image.nii.gz`) }, imageOptions()),
    { url: withToken(cfg.dose_url), name: "dose.nii.gz", colormap: "jet", opacity: 0.5, cal_min: lo, cal_max: hi },
  ]);
  const [image, dose] = nv.volumes;
  image.colorbarVisible = false;
  dose.cal_min = lo;
  dose.cal_max = hi;
  windowImage(nv, image);
  nv.updateGLVolume();
  if (cfg.focus_mm) nv.scene.crosshairPos = nv.mm2frac(LPS(cfg.focus_mm));
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  const window0 = [image.cal_min, image.cal_max];
  const crosshair0 = nv.scene.crosshairPos.slice();
  setupControls(nv, image, () => {
    [image.cal_min, image.cal_max] = window0;
    nv.scene.crosshairPos = crosshair0.slice();
    nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
    nv.updateGLVolume();
  });
  nv.drawScene();
}

keepToken();
const pages = { margin: marginPage, sirt: sirtPage };
if (pages[cfg.page]) {
  pages[cfg.page]()
    .then(() => {
      status("");
      state.ready = true;
    })
    .catch((e) => {
      state.error = String(e.message || e);
      status(`viewer error: ${state.error}`);
    });
}
