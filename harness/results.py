"""``Results``: one stored run as a notebook uses it — its scores as a DataFrame, the
leaderboard (HTML in Jupyter, text in a terminal), the figures, claims checked, the
report, MLflow.

:func:`harness.evaluate` returns one; ``harness.Results.open(out, run_id)`` opens any
stored run (the latest by default). Everything is read from the store, so a Results
object and ``xai-harness show``/``report``/``check`` on the same run agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.errors import HarnessError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from harness.claims import ClaimResult, ClaimSpec


@dataclass
class Leaderboard:
    """A run's leaderboard: ``frame`` (one row per dataset × model × explainer × metric:
    mean over seeds, 95 % t-interval, seeds, rank — :func:`harness.leaderboard`), shown
    as HTML tables in Jupyter and as the terminal's tables elsewhere."""

    frame: pd.DataFrame

    def _repr_html_(self) -> str:
        from harness.report.aggregate import all_tables
        from harness.report.render import render_html

        return render_html(all_tables(self.frame))

    def __str__(self) -> str:
        """The tables ``xai-harness show`` prints (mean ± half the 95 % interval)."""
        from harness.report.aggregate import all_tables
        from harness.report.render import render_text

        return render_text(all_tables(self.frame, "compact"), width=120)

    __repr__ = __str__


@dataclass
class Verdicts:
    """Claims checked on a run: ``outcomes`` (one per claim and regime), ``frame`` (claim,
    verdict, value, interval, seeds), ``failed`` (any claim that does not hold)."""

    run_id: str
    outcomes: list[ClaimResult]

    @property
    def failed(self) -> bool:
        return any(o.verdict != "holds" for o in self.outcomes)

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "claim": o.label,
                    "verdict": o.verdict,
                    "value": o.measured,
                    "ci_low": o.low if o.has_interval else float("nan"),
                    "ci_high": o.high if o.has_interval else float("nan"),
                    "seeds": o.seeds,
                    "statement": o.claim.statement(),
                    "source": o.claim.source,
                }
                for o in self.outcomes
            ],
            columns=[
                "claim",
                "verdict",
                "value",
                "ci_low",
                "ci_high",
                "seeds",
                "statement",
                "source",
            ],
        )

    def lines(self) -> list[str]:
        """One line per verdict, as ``xai-harness check`` prints them."""
        from harness.report.claims import describe_outcome

        return [describe_outcome(o) for o in self.outcomes]

    def _repr_html_(self) -> str:
        return self.frame.to_html(index=False, escape=True, float_format=lambda v: f"{v:.4g}")

    def __str__(self) -> str:
        return "\n".join(self.lines()) or f"run {self.run_id}: no claims"

    __repr__ = __str__


class Results:
    """One stored run (see the module). ``out_dir`` and ``run_id`` name it; ``keep``
    holds the temporary folder of a run kept in memory (deleted with this object)."""

    def __init__(self, out_dir: str | Path, run_id: str, *, keep: Any = None) -> None:
        self.out_dir = Path(out_dir)
        self.run_id = run_id
        self._keep = keep

    @classmethod
    def open(cls, out_dir: str | Path = "results", run_id: str | None = None) -> Results:
        """The run ``run_id`` (a unique prefix is enough; default: the latest) stored
        under ``out_dir``."""
        from harness.store import ResultsStore

        with ResultsStore(out_dir, create=False) as store:
            return cls(out_dir, store.resolve_run_id(run_id))

    @cached_property
    def info(self) -> dict[str, Any]:
        """The run's stored record: suite, config, environment, status, stage seconds."""
        from harness.store import ResultsStore

        with ResultsStore(self.out_dir, create=False) as store:
            return store.run_info(self.run_id)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """Every score of the run, one row per cell × metric (:func:`harness.load_results`)."""
        from harness.store import load_results

        return load_results(self.out_dir, self.run_id)

    @property
    def importance(self) -> pd.DataFrame:
        """Each tabular cell's global importance with its column names
        (:func:`harness.load_importance`)."""
        from harness.report.importance import load_importance

        return load_importance(self.out_dir, self.run_id)

    def leaderboard(self) -> Leaderboard:
        """The run's leaderboard (HTML in Jupyter, text elsewhere; ``.frame`` the data)."""
        from harness.report.aggregate import summarise

        return Leaderboard(summarise(self.frame))

    def figures(self, kinds: Sequence[str] | None = None) -> list[Figure]:
        """The run's figures — the default ones and the suite's ``[[figures]]``, or only
        the ``kinds`` named (e.g. ``["metric", "faithfulness"]``) — as matplotlib figures
        (shown inline by Jupyter)."""
        from harness.report.figures import FIGURE_KINDS, load_run_data, run_figures
        from harness.store import ResultsStore

        unknown = sorted(set(kinds or ()) - set(FIGURE_KINDS))
        if unknown:
            raise HarnessError(
                f"unknown figure kind '{unknown[0]}'; known: {', '.join(FIGURE_KINDS)}"
            )
        with ResultsStore(self.out_dir, create=False) as store:
            data = load_run_data(store, self.run_id)
        return [
            figure
            for stem, figure in run_figures(data)
            if kinds is None or any(stem == k or stem.startswith(f"{k}_") for k in kinds)
        ]

    def check(self, claims: Sequence[dict[str, Any] | ClaimSpec] | None = None) -> Verdicts:
        """Check ``claims`` (``[[claims]]`` tables as dicts; default: the run's own) on
        this run, with the statistics of ``xai-harness check``."""
        from pydantic import ValidationError

        from harness.checking import check_run
        from harness.claims import ClaimSpec, claim_problems
        from harness.suite_messages import describe

        if claims is None:
            specs = [ClaimSpec.model_validate(c) for c in self.info["config"].get("claims", [])]
        else:
            specs = []
            for index, claim in enumerate(claims):
                try:
                    spec = claim if isinstance(claim, ClaimSpec) else ClaimSpec(**claim)
                except ValidationError as exc:
                    problem = describe(exc, ClaimSpec, prefix=f"claims[{index}]")[0]
                    raise HarnessError(problem) from None
                problems = claim_problems(spec, self._ids())
                if problems:
                    raise HarnessError(f"claims[{index}].{problems[0]}")
                specs.append(spec)
        report = check_run(self.info["suite_name"], specs, self.out_dir, self.run_id)
        return Verdicts(self.run_id, report.outcomes)

    def _ids(self) -> dict[str, list[str]]:
        frame = self.frame
        return {
            key: sorted(frame[key].dropna().unique())
            for key in ("metric", "explainer", "dataset", "model")
        }

    def report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report (and its figures and tables) to the folder ``path``
        (default ``<out>/reports/<run>/``); returns the path of ``report.html``."""
        from harness.report.html_report import write_report

        return write_report(self.out_dir, self.run_id, None if path is None else Path(path))

    def log_mlflow(self, tracking_uri: str | None = None, experiment: str | None = None) -> str:
        """Log this run to MLflow (:mod:`harness.mlflow_logging`: one MLflow run with a
        nested run per cell); returns the MLflow run id."""
        from harness.mlflow_logging import log_run

        return log_run(self.out_dir, self.run_id, tracking_uri=tracking_uri, experiment=experiment)

    def __repr__(self) -> str:
        counts = self.frame.drop_duplicates("cell_id")["status"].value_counts().to_dict()
        cells = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return (
            f"Results(run {self.run_id} of suite '{self.info['suite_name']}' in "
            f"{self.out_dir}: {cells})\n{self.leaderboard()}"
        )

    def _repr_html_(self) -> str:
        import html

        title = html.escape(
            f"run {self.run_id} of suite '{self.info['suite_name']}' in {self.out_dir}"
        )
        return f"<p><b>{title}</b></p>\n{self.leaderboard()._repr_html_()}"
