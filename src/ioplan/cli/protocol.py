"""``ioplan protocol``: the MR-guided procedure protocol document (issue 22)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import app, console


@app.command()
def protocol(
    modality: Annotated[str, typer.Option(help="mwa, rfa or cryo.")],
    field_t: Annotated[float, typer.Option("--field-t", help="Scanner field: 1.5 or 3 (T).")],
    out: Annotated[Path, typer.Option(help="Output folder (protocol.json, protocol.html).")],
    guidance: Annotated[str, typer.Option(help="mr (the protocol is for MR guidance).")] = "mr",
    applicator: Annotated[
        str,
        typer.Option(
            help="A catalogue device (default: every MR Conditional one that fits); "
            "one not MR Conditional at --field-t is refused with the reason."
        ),
    ] = "",
    tissue: Annotated[str, typer.Option(help="Target tissue (T2*, T1): liver or kidney.")] = (
        "liver"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print protocol.json.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", "--overwrite", help="Replace this command's earlier output at --out."
        ),
    ] = False,
) -> None:
    """Write the protocol of an MR-guided ablation (protocol.json, protocol.html).

    Steps, team, sequences, thermometry, device MR conditions and the needle artefact, each
    value with its source.
    """
    from ioplan.protocol import (
        ProtocolConfig,
        build_protocol,
        check_protocol_output,
        write_protocol,
    )

    cfg = ProtocolConfig(modality=modality.lower(), field_t=field_t, guidance=guidance,
                         applicator_id=applicator, tissue=tissue.lower())  # fmt: skip
    check_protocol_output(out, overwrite=force)
    doc = build_protocol(cfg)
    write_protocol(doc, out, overwrite=force)
    if as_json:
        sys.stdout.write(json.dumps(doc.to_dict(), indent=2) + "\n")
        return
    th = doc.thermometry
    console.print(
        f"protocol for MR-guided {cfg.modality} at {cfg.field_t:g} T written to {out}: "
        f"{len(doc.steps)} steps, {len(doc.sequences)} sequences, {len(doc.devices)} device(s); "
        f"thermometry TE {th.te_ms:g} ms, SNR {th.snr:.1f}, precision "
        f"{th.expected_precision_c:.2f} degC",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    for n in doc.notes:
        console.print(f"note: {n}", markup=False, highlight=False, soft_wrap=True)
