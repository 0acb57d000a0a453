"""Planning and executing suites."""

from harness.runner.execute import RunSummary, run_suite
from harness.runner.plan import Cell, plan

__all__ = ["Cell", "RunSummary", "plan", "run_suite"]
