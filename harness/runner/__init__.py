"""Planning, running and scoring suites: ``plan`` (cells and skip reasons), ``cell`` (one
cell: train, explain, cache), ``scoring`` (metrics from what a cell produced), ``executor``
and ``parallel`` (how groups of cells run), ``run`` (a run and its resumption)."""

from harness.runner.plan import Cell, plan
from harness.runner.run import RunSummary, run_suite

__all__ = ["Cell", "RunSummary", "plan", "run_suite"]
