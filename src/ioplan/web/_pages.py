"""The HTML pages: the cases, a case, its plan. Tables are rendered here; the viewer is JS.

Every value put into a page goes through :func:`html.escape`; the page's settings for the
viewer travel in a JSON block (``<script type="application/json">``, never executed), so
the content security policy allows no inline script at all.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ioplan.web._api_cases import Services

__all__ = ["WINDOW_PRESETS", "page", "router"]

router = APIRouter(include_in_schema=False)

#: CT window presets (width, level) in HU shown on the case and plan pages.
WINDOW_PRESETS = {
    "soft tissue": (400, 40),
    "liver": (150, 60),
    "lung": (1500, -600),
    "bone": (2000, 500),
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#ddd}
header{padding:8px 16px;background:#1d2a3a}header a{color:#9cf;margin-right:12px}
main{display:flex;gap:12px;padding:12px}#side{width:360px;flex:none;font-size:13px}
#viewer{flex:1;min-width:0;align-self:flex-start;position:sticky;top:12px;
height:calc(100vh - 64px);min-height:420px}
canvas#gl{width:100%;height:640px;background:#000;display:block}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #444;padding:2px 6px;
text-align:left}th{background:#223}a{color:#9cf}button{margin:2px}
.note{background:#442;padding:8px;border-radius:4px}input{width:70px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
progress{width:100%}
"""


def _page(
    title: str, body: str, config: dict[str, Any], viewer_built: bool, script: str = "viewer.js"
) -> HTMLResponse:
    """A whole page: header, ``body``, the settings block and the page's bundled ``script``.

    ``script`` is the name of a bundle in ``static/`` (``frontend/src/<script>``); other
    page modules of this package call this function so that every page has one look, one
    content security policy and one way of passing its settings.
    """
    src = f"/static/{escape(script)}"
    script = f'<script type="module" src="{src}"></script>' if viewer_built else ""
    missing = (
        ""
        if viewer_built or config.get("page") == "cases"
        else '<p class="note" id="viewer-missing">The viewer is not built (Node.js and npm were '
        "not available when ioplan was installed): the tables work, the images do not. "
        'Install Node.js and run <code>pip install -e ".[dev]"</code> again to build it.</p>'
    )
    # JSON inside <script>: no "<", ">" or "&" that could end the element (JSON escapes)
    cfg = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e")
    cfg = cfg.replace("&", "\\u0026")
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - ioplan</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_CSS}</style></head>
<body><header><b>ioplan</b> &middot; <a href="/">cases</a><a href="/registry">registry</a>
<a href="/live">live monitoring</a>
<span id="crumbs">{escape(title)}</span></header>
{missing}{body}
<script type="application/json" id="ioplan-config">{cfg}</script>{script}
<footer style="padding:8px 16px;color:#888">Not for clinical use. Synthetic data or
de-identified images only.</footer></body></html>"""
    return HTMLResponse(html)


#: The page builder for the other page modules of this package (``_pages_*.py``).
page = _page


@router.get("/favicon.ico")
def favicon() -> Response:
    """No icon (an empty answer instead of a 404 in every browser's console)."""
    return Response(status_code=204)


@router.get("/", response_class=HTMLResponse)
def cases_page(svc: Services) -> HTMLResponse:
    """The list of cases, with links to each case and its plan."""
    rows = []
    for n in svc.store.names():
        s = svc.store.summary(n)
        plan = f'<a href="/cases/{escape(n)}/plan">plan</a>' if s["has_plan"] else "-"
        rows.append(
            f'<tr><td><a href="/cases/{escape(n)}">{escape(n)}</a></td>'
            f"<td>{escape(s['modality'])}</td><td>{s['tumors']}</td><td>{plan}</td></tr>"
        )
    table = (
        "<table id='cases'><tr><th>case</th><th>modality</th><th>tumours</th><th>plan</th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else "<p>No case folders here (make one with <code>ioplan demo</code>).</p>"
    )
    body = f'<main><div id="side"><h2>Cases</h2>{table}</div></main>'
    return _page("cases", body, {"page": "cases"}, svc.viewer_built)


def _controls(plan: bool) -> str:
    presets = "".join(
        f'<button data-window="{w},{lvl}">{escape(k)}</button>'
        for k, (w, lvl) in WINDOW_PRESETS.items()
    )
    return (
        f"<div>window: {presets}</div>"
        '<div>view: <button data-layout="multi">3 planes + 3D</button>'
        '<button data-layout="axial">axial</button><button data-layout="render">3D</button>'
        '<button id="reset">reset view</button></div>'
        "<p>Scroll: slices; right-drag: window/level; left-click: crosshair."
        + (
            " Needles: tick 'drag the selected' (tip or entry), then click or drag in a "
            "slice; the point follows the crosshair and the zone is simulated again."
            if plan
            else ""
        )
        + "</p>"
    )


@router.get("/cases/{name}", response_class=HTMLResponse)
def case_page(name: str, svc: Services) -> HTMLResponse:
    """A case: the CT with its labels in three planes and 3D, window presets, its labels."""
    info = svc.store.info(name)
    colours = {d["name"]: d["color"] for d in _label_colours()}
    rows = "".join(
        f'<tr><td><span class="swatch" style="background:{_colour(colours, s["label"])}">'
        f"</span>{escape(s['label'])}</td><td>{s['value']}</td><td>{s['volume_ml']:.1f}</td></tr>"
        for s in info["labels"]
    )
    g = info["grid"]
    plan_link = (
        f'<p><a href="/cases/{escape(name)}/plan">the plan</a> &middot; '
        f'<a href="/cases/{escape(name)}/margin">margin confirmation</a> &middot; '
        f'<a href="/cases/{escape(name)}/sirt">SIRT dose</a></p>'
        if svc.store.summary(name)["has_plan"]
        else f'<p><a href="/cases/{escape(name)}/sirt">SIRT dose</a></p>'
    )
    body = f"""<main><div id="side"><h2>{escape(info["name"])} ({escape(info["modality"])})</h2>
<p>grid {" x ".join(str(v) for v in g["shape"][::-1])} voxels (x, y, z), spacing
{" x ".join(f"{v:g}" for v in g["spacing_mm"][::-1])} mm</p>{plan_link}{_controls(False)}
<table id="labels"><tr><th>label</th><th>value</th><th>mL</th></tr>{rows}</table></div>
<div id="viewer"><canvas id="gl"></canvas><div id="status"></div></div></main>"""
    cfg = {"page": "case", "case": name, "modality": info["modality"], "windows": WINDOW_PRESETS}
    return _page(f"case {name}", body, cfg, svc.viewer_built)


def _colour(colours: dict[str, str], label: str) -> str:
    return escape(colours.get(label, "#888888"))


def _label_colours() -> list[dict[str, Any]]:
    from ioplan.web._api_cases import labels

    return labels()


def _fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _setting(a: dict[str, Any]) -> str:
    if a.get("protocol"):
        return str(a["protocol"])
    return f"{_fmt(a.get('power_w'), 'g')} W, {_fmt(a.get('duration_s'), 'g')} s"


def _zone_vs_chart(a: dict[str, Any]) -> str:
    """The planner's predicted zone and the manufacturer's chart at the same setting."""
    pred = (
        f"{_fmt(a.get('predicted_length_mm'))} x {_fmt(a.get('predicted_width_mm'))}"
        if a.get("predicted_length_mm") is not None
        else "-"
    )
    z = (a.get("chart") or {}).get("zone")
    chart = f"{_fmt(z.get('length_mm'))} x {_fmt(z.get('width_mm'))}" if z else "-"
    return f"{pred} / {chart}"


#: Isotherm contour colours (heat: warm colours, cold: blues), in the order of the levels.
_ISO_COLOURS_HEAT = ("#ff9900", "#ffffff")
_ISO_COLOURS_COLD = ("#66ccff", "#3366ff", "#aa00ff")


def _isotherm_legend(svc: Services, name: str) -> list[dict[str, Any]]:
    """The isotherm contours' label values, names and colours (empty when no map exists)."""
    from ioplan.web._cases import ISOTHERMS_COLD_C, ISOTHERMS_HEAT_C, PLAN_FOLDER

    cold = svc.store.plan_is_cold(name)
    stem = "tmin" if cold else "tmax"
    if not (svc.store.folder(name) / PLAN_FOLDER / f"{stem}.nii.gz").is_file():
        return []
    levels, colours = (
        (ISOTHERMS_COLD_C, _ISO_COLOURS_COLD) if cold else (ISOTHERMS_HEAT_C, _ISO_COLOURS_HEAT)
    )
    return [
        {"value": k, "name": f"{t:g} degC", "color": c}
        for k, (t, c) in enumerate(zip(levels, colours, strict=True), start=1)
    ]


@router.get("/cases/{name}/plan", response_class=HTMLResponse)
def plan_page(name: str, svc: Services) -> HTMLResponse:
    """A plan: tumour, margin shell, zone, needles, the at-risk table; editing the needles."""
    plan = svc.store.plan(name)
    modality = svc.store.summary(name)["modality"]
    apps = plan.get("applicators", [])
    app_rows = "".join(
        f"<tr><td>{i + 1}</td><td>{escape(str(a.get('id')))}</td><td>{escape(_setting(a))}</td>"
        f"<td>{escape(str(a.get('tip_mm')))}</td><td>{escape(_zone_vs_chart(a))}</td></tr>"
        for i, a in enumerate(apps)
    )
    risk_rows = "".join(
        f"<tr><td>{escape(str(r.get('structure')))}</td><td>{_fmt(r.get('closest_distance_mm'))}</td>"
        f"<td>{_fmt(r.get('max_temperature_c'))}</td><td>{_fmt(r.get('min_temperature_c'))}</td>"
        f"<td>{'yes' if r.get('lethal_damage') else 'no'}</td></tr>"
        for r in plan.get("at_risk", [])
    )
    goal = "met" if plan.get("goal_met") else "missed"
    if not plan.get("goal_met"):
        why = _goal_shortfalls(plan)
        goal += f" ({'; '.join(why)})" if why else ""
    isotherms = _isotherm_legend(svc, name)
    iso_swatches = "".join(
        f'<span class="swatch" style="background:{escape(e["color"])}"></span>{escape(e["name"])} '
        for e in isotherms
    )
    body = f"""<main><div id="side"><h2>plan of {escape(name)}</h2>
<p><a href="/cases/{escape(name)}">the case</a> &middot;
<a href="/cases/{escape(name)}/margin">margin of this plan's zone</a> &middot;
<a href="/cases/{escape(name)}/sirt">SIRT dose</a></p>
<p id="summary">{escape(str(plan.get("modality")))}: tumour {_fmt(plan.get("coverage_percent"))} %,
tumour + {_fmt(plan.get("margin_mm"), "g")} mm margin {_fmt(plan.get("margin_coverage_percent"))} %,
minimal margin {_fmt(plan.get("minimal_margin_mm"))} mm; goal {escape(goal)}.</p>
<p><span class="swatch" style="background:#0c0"></span>tumour
<span class="swatch" style="background:#ff0"></span>margin shell
<span class="swatch" style="background:#f33"></span>planned zone
<span class="swatch" style="background:#0ff"></span>needles
<span class="swatch" style="background:#f0f"></span>edited zone (engine)
<span class="swatch" style="background:#a6f"></span>chart estimate</p>
<p id="isotherm-legend">{"isotherms: " + iso_swatches if iso_swatches else ""}
<label><input type="checkbox" id="show-isotherms" checked> show isotherms</label></p>
{_controls(True)}
<table id="applicators"><tr><th>#</th><th>applicator</th><th>setting</th><th>tip (LPS mm)</th>
<th>zone L x W (mm): predicted / manufacturer chart, ex vivo</th></tr>
{app_rows}</table>
<div id="editor"></div>
<h3>Structures at risk</h3>
<table id="at-risk"><tr><th>structure</th><th>distance (mm)</th><th>max &deg;C</th>
<th>min &deg;C</th><th>lethal</th></tr>{risk_rows}</table></div>
<div id="viewer"><canvas id="gl"></canvas><div id="status"></div></div></main>"""
    cfg = {
        "page": "plan",
        "case": name,
        "modality": modality,
        "windows": WINDOW_PRESETS,
        "isotherms": isotherms,
        "applicators": [
            {k: a.get(k) for k in ("id", "tip_mm", "entry_mm", "power_w", "duration_s", "protocol")}
            for a in apps
        ],
    }
    return _page(f"plan {name}", body, cfg, svc.viewer_built)


def _goal_shortfalls(plan: dict[str, Any]) -> list[str]:
    """Why plan.json's plan misses its goal (``ioplan.planning.goal_shortfalls``); [] if unsure."""
    from ioplan.planning import GOAL_MARGIN_COVERAGE_PERCENT, goal_shortfalls

    try:
        return goal_shortfalls(float(plan["coverage_percent"]),
                               float(plan["margin_coverage_percent"]), plan.get("at_risk") or [],
                               float(plan["protect_mm"]), GOAL_MARGIN_COVERAGE_PERCENT)
    except (KeyError, TypeError, ValueError):  # an older or hand-edited plan.json
        return []
