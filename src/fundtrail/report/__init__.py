"""Incident reports: the report model, its assembly from trace results, and renderers."""

from fundtrail.report.build import assemble_report
from fundtrail.report.model import Report

__all__ = ["Report", "assemble_report"]
