"""Figures and HTML reports."""

from ioplan.report._overview import save_overview_figure, write_case_overview

__all__ = ["save_overview_figure", "write_case_overview"]
