// The live monitoring page: starts or follows a session of /api/live/sessions, draws each
// streamed frame (temperature colour map, CEM43 >= 240 min contour, structure at risk),
// the max-temperature plot and the alerts, and measures the latency from a frame's
// message arriving in the page to the frame on screen (the next animation frame after the
// draw). Settings come from the page's JSON block (#ioplan-config); a token given as
// ?token= in the page's address is passed on to every request.
import { decodeF32, decodeU8, drawColourBar, drawMap, drawPlot, outline } from "./_live_draw.js";

import { cfg, state, api, keepLinks, withToken } from "./_page.js";

const KEPT = 200; // latency samples the page's percentiles are taken over (all are kept)
Object.assign(state, {
  session: null, sessionState: null, frames: 0, baseline: 0, drawn: 0, necroticPixels: 0,
  alerts: 0, latencies: [], e2e: [], arrivals: [], p50: null, p95: null, e2eP95: null, error: null,
  done: false, lastFrame: null,
});

const $ = (id) => document.getElementById(id);
const range = cfg.display_range_c;
const alertC = () => (state.thresholds ? state.thresholds.alert_temperature_c.value
  : cfg.thresholds.alert_temperature_c);
const necrosisMin = () => (state.thresholds ? state.thresholds.necrosis_cem43_min.value
  : cfg.thresholds.necrosis_cem43_min);

keepLinks();

function say(text) {
  $("state").textContent = text;
}

function percentile(values, q) {
  if (!values.length) return null;
  const s = values.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((q / 100) * s.length) - 1)];
}

const fmt = (v, d = 1) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));

// -- one session's stream ---------------------------------------------------------------
let source = null;
let view = null; // {rows, cols, atRisk: Path2D|null}
let pending = []; // frames arrived, not yet drawn: [{doc, arrived}]
let scheduled = false;
const small = document.createElement("canvas");
const plot = { times: [], values: [] };

function reset() {
  Object.assign(state, { frames: 0, baseline: 0, drawn: 0, necroticPixels: 0, alerts: 0,
    latencies: [], e2e: [], arrivals: [], p50: null, p95: null, e2eP95: null, error: null,
    done: false, lastFrame: null });
  plot.times = [];
  plot.values = [];
  pending = [];
  $("alerts").replaceChildren();
}

function onStart(doc) {
  state.thresholds = doc.thresholds;
  const [rows, cols] = doc.shape.slice(-2);
  const mask = doc.at_risk ? decodeU8(doc.at_risk.mask) : null;
  view = { rows, cols, atRisk: mask ? outline(mask, rows, cols, $("map").width / cols) : null };
  drawColourBar($("colourbar"), range, alertC());
}

function addAlerts(doc) {
  const list = $("alerts");
  for (const a of doc.alerts) {
    const li = document.createElement("li");
    li.textContent = `frame ${a.frame} (${fmt(a.time_s, 0)} s): ${fmt(a.temperature_c)} °C > `
      + `${fmt(a.limit_c, 0)} °C in the structure at risk, voxel [${a.voxel.join(", ")}]`;
    li.style.color = "#f88";
    list.prepend(li);
    state.alerts++;
  }
  while (list.children.length > 100) list.lastChild.remove();
}

function draw() {
  scheduled = false;
  if (!pending.length || !view) return;
  const batch = pending;
  pending = [];
  const { doc } = batch[batch.length - 1]; // the newest frame is the one shown
  const temp = decodeF32(doc.temperature_c);
  const cem = decodeF32(doc.cem43_min);
  state.necroticPixels = drawMap($("map"), small, temp, cem, view.rows, view.cols, range,
    necrosisMin(), view.atRisk);
  drawPlot($("plot"), plot.times, plot.values, alertC());
  $("frame-count").textContent = `${doc.frame} (${state.frames} measured)`;
  $("scan-time").textContent = fmt(doc.time_s, 0);
  $("max-temperature").textContent = fmt(doc.max_temperature_c);
  $("max-cem43").textContent = fmt(doc.max_cem43_min, 1);
  $("necrosis").textContent = fmt(doc.necrosis_volume_ml, 3);
  $("server-ms").textContent = fmt(doc.ms, 1);
  state.drawn++;
  // on screen once the browser has presented this frame: at the next animation frame
  requestAnimationFrame(() => {
    const now = performance.now();
    const wall = Date.now();
    for (const b of batch) {
      state.latencies.push(now - b.arrived);
      state.e2e.push(wall - 1000 * b.doc.received_s);
    }
    const recent = state.latencies.slice(-KEPT);
    state.p50 = percentile(recent, 50);
    state.p95 = percentile(recent, 95);
    state.e2eP95 = percentile(state.e2e.slice(-KEPT), 95);
    $("latency-p50").textContent = fmt(state.p50);
    $("latency-p95").textContent = fmt(state.p95);
    $("e2e-p95").textContent = fmt(state.e2eP95);
  });
}

function follow(session) {
  if (source) source.close();
  reset();
  state.session = session.id;
  state.sessionState = session.state;
  $("stop").disabled = false;
  say(`session ${session.id}: ${session.state}`);
  source = new EventSource(withToken(session.frames_url));
  source.addEventListener("start", (e) => onStart(JSON.parse(e.data)));
  source.addEventListener("baseline", (e) => {
    const doc = JSON.parse(e.data);
    state.baseline = doc.baseline;
    say(`session ${session.id}: baseline ${doc.baseline} of ${doc.of}`);
  });
  source.addEventListener("frame", (e) => {
    const arrived = performance.now();
    const doc = JSON.parse(e.data);
    state.arrivals.push(arrived);
    state.frames++;
    state.lastFrame = doc.frame;
    plot.times.push(doc.time_s);
    plot.values.push(doc.max_temperature_c);
    addAlerts(doc);
    pending.push({ doc, arrived });
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(draw);
    }
    if (state.sessionState !== "running") {
      state.sessionState = "running";
      say(`session ${session.id}: running`);
    }
  });
  source.addEventListener("end", (e) => {
    const doc = JSON.parse(e.data);
    source.close();
    source = null;
    state.done = true;
    state.sessionState = doc.state;
    state.error = doc.error;
    $("stop").disabled = true;
    const s = doc.summary;
    say(`session ${doc.id}: ${doc.state}${doc.error ? ` (${doc.error})` : ""}; ${s.frames} `
      + `frames, max ${fmt(s.max_temperature_c)} °C, necrosis ${fmt(s.necrosis_volume_ml, 3)} mL`);
  });
  source.onerror = () => {
    if (source && source.readyState === EventSource.CLOSED) {
      state.error = "the stream was closed";
      say(state.error);
    }
  };
}

function settings() {
  const input = $("set-input").value;
  const doc = {};
  if (input === "demo") {
    doc.demo = true;
  } else if (input === "igtl") {
    doc.igtl_input = $("set-igtl").value;
  } else {
    doc.folder = $("set-folder").value;
  }
  for (const el of document.querySelectorAll("#settings input[data-key]")) {
    const key = el.dataset.key;
    if (input !== "demo" && ["frames", "interval_s", "seed"].includes(key)) continue;
    if (el.value !== "") doc[key] = Number(el.value);
  }
  return doc;
}

$("start").addEventListener("click", async () => {
  try {
    state.error = null;
    const session = await api("/api/live/sessions", { method: "POST", body: JSON.stringify(settings()) });
    follow(session);
  } catch (err) {
    state.error = err.message;
    say(err.message);
  }
});

$("stop").addEventListener("click", async () => {
  if (!state.session) return;
  try {
    await api(`/api/live/sessions/${state.session}`, { method: "DELETE" });
  } catch (err) {
    say(err.message);
  }
});

drawColourBar($("colourbar"), range, alertC());
drawPlot($("plot"), [], [], alertC());
// a session already running (started from another page): follow it
api("/api/live/sessions").then((list) => {
  const running = list.find((s) => ["starting", "baseline", "running"].includes(s.state));
  if (running && !state.session) follow(running);
  state.ready = true;
}).catch((err) => {
  state.error = err.message;
  state.ready = true;
});
