"""Figures and HTML reports: the shared page skeleton, tables, CT window and orientation.

Every HTML report of ioplan is built from :mod:`ioplan.report`'s pieces (one style, one
footer with the version and the research-use disclaimer, escaped values, atomic writes),
and every slice figure is drawn in the radiological convention through
:func:`ioplan.imaging.axial_volume`.
"""

from ioplan.report._figures import CT_WINDOW_HU, save_figure
from ioplan.report._html import (
    bullet_list,
    escape,
    figure,
    key_value_table,
    page,
    table,
    write_page,
)
from ioplan.report._maps import save_probability_figure, save_territory_figure
from ioplan.report._overview import save_overview_figure, write_case_overview
from ioplan.report._validation import write_validation_report

__all__ = [
    "CT_WINDOW_HU",
    "bullet_list",
    "escape",
    "figure",
    "key_value_table",
    "page",
    "save_figure",
    "save_overview_figure",
    "save_probability_figure",
    "save_territory_figure",
    "table",
    "write_case_overview",
    "write_page",
    "write_validation_report",
]
