"""Applicator catalogue: microwave antennas, RF electrodes, cryoprobes (data with sources)."""

from ioplan.devices._catalogue import Applicator, applicator, list_applicators, load_applicator_file

__all__ = ["Applicator", "applicator", "list_applicators", "load_applicator_file"]
