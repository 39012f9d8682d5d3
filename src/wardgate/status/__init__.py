"""Conditions back to the source: a status file and tables standalone."""

from wardgate.status.report import format_table, rows, write_status_file

__all__ = ["format_table", "rows", "write_status_file"]
