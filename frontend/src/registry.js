// The registry dashboard (/registry): the survival and incidence curves, drawn in SVG from
// the curves in the page's JSON block (#ioplan-config, the document of
// GET /api/registry/curves). The tables are rendered by the server. A token given as
// ?token= in the page's address is kept on the links and the times form.
import { incidenceTop, plotFigure } from "./_registry_plot.js";

const cfg = JSON.parse(document.getElementById("ioplan-config").textContent);
const token = new URLSearchParams(window.location.search).get("token");
const state = { ready: false, error: null, missing: null, curves: 0 };
window.ioplan = { cfg, state };

function withToken(url) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

for (const a of document.querySelectorAll("a[href^='/']")) {
  a.setAttribute("href", withToken(a.getAttribute("href")));
}
const form = document.getElementById("times");
if (form && token) {
  const hidden = document.createElement("input");
  hidden.type = "hidden";
  hidden.name = "token";
  hidden.value = token;
  form.appendChild(hidden);
}

function draw() {
  if (!cfg.curves) {
    state.missing = cfg.error || null; // no registry: the page says why
    return;
  }
  const { survival, incidence } = cfg.curves;
  const place = (id, svg) => {
    const holder = document.getElementById(id);
    holder.replaceChildren(svg);
  };
  if (survival.curves.length) {
    place("survival-plot", plotFigure(survival, { yMax: 1, yLabel: "survival probability" }));
  }
  if (incidence.curves.length) {
    place("incidence-plot", plotFigure(incidence, { yMax: incidenceTop(incidence),
      yLabel: "cumulative incidence" })); // prettier-ignore
  }
  state.curves = document.querySelectorAll("path.step").length;
  const note = document.getElementById("plot-status");
  if (note && !state.curves) note.textContent = "No curve to draw (no treated patient).";
}

try {
  draw();
} catch (err) {
  state.error = String(err);
  const note = document.getElementById("plot-status");
  if (note) note.textContent = `The curves could not be drawn: ${err}`;
}
state.ready = true;
