"""MR-guided procedure protocols (issue 22).

Steps, roles, sequences, thermometry parameters, device MR conditions and the needle
artefact: :func:`build_protocol` then :func:`write_protocol` (``ioplan protocol``).
"""

from ioplan.protocol._protocol import (
    MODALITIES,
    PROTOCOL_FILES,
    PROTOCOL_SCHEMA_VERSION,
    Protocol,
    ProtocolConfig,
    build_protocol,
    check_protocol_output,
    write_protocol,
)
from ioplan.protocol._thermometry import (
    FIELDS_T,
    TISSUES,
    ThermometryPlan,
    prf_precision_c,
    thermometry_plan,
)

__all__ = [
    "FIELDS_T",
    "MODALITIES",
    "PROTOCOL_FILES",
    "PROTOCOL_SCHEMA_VERSION",
    "TISSUES",
    "Protocol",
    "ProtocolConfig",
    "ThermometryPlan",
    "build_protocol",
    "check_protocol_output",
    "prf_precision_c",
    "thermometry_plan",
    "write_protocol",
]
