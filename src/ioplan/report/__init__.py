"""Figures and HTML reports."""

from ioplan.report._overview import save_overview_figure, write_case_overview
from ioplan.report._validation import write_validation_report

__all__ = ["save_overview_figure", "write_case_overview", "write_validation_report"]
