"""``protocol.html``: the protocol document as one self-contained page (no scripts)."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["protocol_html"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222;
       line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } .src { color: #555; font-size: 0.8rem; }
.note { background: #fff6db; padding: 0.5rem; border-left: 4px solid #e0b000; }
"""


def _e(v: Any) -> str:
    return escape(str(v))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _src(text: str) -> str:
    return f'<div class="src">Source: {_e(text)}</div>'


def protocol_html(doc: dict[str, Any]) -> str:
    """The HTML page of a ``protocol.json`` document."""
    mod = {"mwa": "microwave ablation", "rfa": "radiofrequency ablation", "cryo": "cryoablation"}
    title = f"MR-guided {mod[doc['modality']]} at {doc['field_t']:g} T ({doc['tissue']})"
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p>ioplan {_e(doc['software_version'])} protocol document, schema "
             f"{doc['schema_version']}. A planning aid: every value carries its source; "
             "values marked as assumptions are to be adapted to the site.</p>"]  # fmt: skip
    for n in doc["notes"]:
        parts.append(f'<p class="note">{_e(n)}</p>')
    parts.append("<h2>Steps</h2>")
    for i, s in enumerate(doc["steps"], 1):
        parts.append(f"<h3>{i}. {_e(s['title'])}</h3><p>{_e(s['text'])}</p>{_src(s['source'])}")
    parts.append("<h2>Sequences</h2>")
    rows = []
    for s in doc["sequences"]:
        srcs = "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in s["sources"].items())
        rows.append([_e(s["name"]), _e(s["purpose"]), _e(s["te_ms"]), _e(s["tr_ms"]),
                     _e(s["flip_deg"]), _e(s["resolution_mm"]),
                     f'<span class="src">{srcs}</span>'])  # fmt: skip
    parts.append(_table(["sequence", "purpose", "TE (ms)", "TR (ms)", "flip (deg)",
                         "resolution (mm)", "sources"], rows))  # fmt: skip
    th = doc["thermometry"]
    parts.append("<h2>PRF thermometry</h2>")
    parts.append(_table(["quantity", "value", "source"], [
        ["T2* (ms)", _e(th["t2star_ms"]), _e(th["sources"]["t2star_ms"])],
        ["TE (ms)", _e(th["te_ms"]), _e(th["sources"]["te_rule"] + "; limited by "
                                        + th["te_limited_by"])],
        ["TR (ms) / flip (deg)", f"{_e(th['tr_ms'])} / {_e(th['flip_deg'])}",
         _e(th["sources"]["flip_deg"])],
        ["baseline frames N", _e(th["baseline_frames"]), _e(th["sources"]["baseline_frames"])],
        ["SNR at TE", _e(th["snr"]), _e(th["sources"]["snr_1p5t_te0"])],
        ["PRF coefficient (ppm/degC)", _e(th["alpha_ppm_per_c"]),
         _e(th["sources"]["alpha_ppm_per_c"])],
        ["expected precision (degC)", _e(th["expected_precision_c"]),
         _e(th["sources"]["expected_precision_c"])],
    ]))  # fmt: skip
    parts.append(f"<p>{_e(th['formula'])}</p>")
    parts.append("<h2>Devices and their MR conditions</h2>")
    if not doc["devices"]:
        parts.append("<p>No catalogue device is labelled MR Conditional for this modality and "
                     "field.</p>")  # fmt: skip
    for d in doc["devices"]:
        fields = ", ".join(f"{f:g} T" for f in d["mr_fields_t"]) or "-"
        parts.append(f"<h3>{_e(d['id'])}: {_e(d['name'])}</h3>"
                     f"<p>MR Conditional: {_e(d['mr_conditional'])} (fields: {_e(fields)}; "
                     f"diameter {_e(d['diameter_mm'])} mm; shaft "
                     f"{_e(d['mr_material'] or 'not recorded')})</p>"
                     f"<p>{_e(d['mr_conditions'])}</p>")  # fmt: skip
    a = doc["needle_artefact"]
    parts.append("<h2>Needle artefact</h2>")
    parts.append(f"<p>{_e(a['device'])}, {_e(a['material'])}, {_e(a['diameter_mm'])} mm, "
                 f"{_e(a['field_t'])} T; B0 along LPS {_e(a['b0_axis_lps'])} (the bore). "
                 f"{_e(a['model'])}.</p>{_src(a['anchor']['source'])}")  # fmt: skip
    angles = sorted({r["angle_to_b0_deg"] for r in a["rows"]})
    seqs = list(dict.fromkeys(r["sequence"] for r in a["rows"]))
    width = {(r["sequence"], r["angle_to_b0_deg"]): r["width_mm"] for r in a["rows"]}
    parts.append(
        _table(
            ["sequence"] + [f"{x:g} deg to B0" for x in angles],
            [[_e(s)] + [f"{width[(s, x)]:g} mm" for x in angles] for s in seqs],
        )
    )
    parts.append(
        f"<p>The planner prefers paths near-parallel to B0 where the void would be wider than "
        f"{a['hides_target_when_wider_than_fraction_of_target']:g} of the target's diameter.</p>"
    )
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")  # fmt: skip
