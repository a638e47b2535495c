"""The rule health report: one self-contained HTML page a data scientist opens each morning.

>>> from rulelife.report import write_report  # doctest: +SKIP
>>> write_report(workspace, Path("report.html")).sections  # doctest: +SKIP
('bundle', 'tickets', 'auto-disables', 'expiry', 'shadow', 'rules', 'evaluations', 'residual')
"""

from rulelife.report.data import ReportData, gather
from rulelife.report.evaluation import render_evaluation_html
from rulelife.report.html import SECTIONS, ReportResult, render_report, write_report

__all__ = ["SECTIONS", "ReportData", "ReportResult", "gather", "render_evaluation_html", "render_report",
           "write_report"]
