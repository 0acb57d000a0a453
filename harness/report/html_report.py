"""``xai-harness report``: one self-contained HTML file per run, from the store only.

``report.html`` has no external resource: CSS and the sorting script are inline and every
figure is an inlined PNG (base64), so it opens anywhere, offline. Sections: the run
(suite, status, times, versions, git commit, machine), one section per dataset (its
leaderboard with sortable columns and its figures), the cross-dataset rank summary, the
other figures, the conventions each metric was computed with, and the failed and skipped
cells with their reasons. Beside it: the figures as PNG and PDF (``figures/``) and the
tables in every format (``leaderboard.{txt,md,csv,tex,html}``).
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.artifacts import SECONDS, metric_array
from harness.errors import HarnessError
from harness.meta_consistency import META_SCORES, META_SECONDS, MetaCheck, meta_checks
from harness.output_paths import writable_folder
from harness.report.aggregate import LeaderboardTable, all_tables, summarise
from harness.report.figures import load_run_data, run_figures, save
from harness.report.render import (
    render_csv,
    render_html,
    render_latex,
    render_markdown,
    render_text,
)
from harness.store import ResultsStore, run_status

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 78rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; }
td { text-align: right; white-space: nowrap; } td:nth-child(-n+2) { text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.sorted-up::after { content: " ▲"; } th.sorted-down::after { content: " ▼"; }
td strong { color: #0a6b2d; } .scroll { overflow-x: auto; }
table.meta td { text-align: left; white-space: normal; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
ul.footnotes { font-size: 0.8rem; color: #555; }
pre { background: #f7f7f7; padding: 0.5rem; font-size: 0.8rem; white-space: pre-wrap; }
td.separates { color: #0a6b2d; } td.fails { color: #b00020; font-weight: bold; }
td.undecided, td.untested { color: #777; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.leaderboard").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (header, column) {
    header.addEventListener("click", function () {
      var body = table.tBodies[0];
      var up = !header.classList.contains("sorted-up");
      table.querySelectorAll("th").forEach(function (h) {
        h.classList.remove("sorted-up", "sorted-down");
      });
      header.classList.add(up ? "sorted-up" : "sorted-down");
      var rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var u = x.dataset.value, v = y.dataset.value;
        if (u === undefined && v !== undefined) { return 1; }  // missing values last
        if (u !== undefined && v === undefined) { return -1; }
        var order = u !== undefined ? parseFloat(u) - parseFloat(v)
                                    : x.textContent.localeCompare(y.textContent);
        return up ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def write_report(
    out_dir: str | Path, run_id: str | None, to: Path | None, include_machine: bool = False
) -> Path:
    """Write ``report.html`` and its companions for a run (latest by default) to ``to``,
    or ``<out_dir>/reports/<run_id>/``; returns the path of ``report.html``. The page is
    meant to be shared: the suite appears by file name, and the host name, the suite's
    absolute path and a Dask scheduler's address only with ``include_machine``."""
    with ResultsStore(out_dir, create=False) as store:
        resolved, info = store.run_with_cells(run_id)
        info["status"] = run_status(store, info)
        data = load_run_data(store, resolved)
    folder = to or Path(out_dir) / "reports" / resolved
    summary = summarise(data.results)
    tables = all_tables(summary)
    writable_folder(folder, "--to")
    try:
        _write_tables(folder, summary, tables)
    except OSError as exc:
        raise HarnessError(
            f"cannot write the report to {folder} ({exc.strerror or exc}); free some space "
            "or pass --to with a writable folder"
        ) from exc
    figures: list[tuple[str, Path]] = []
    for stem, figure in run_figures(data):
        png = save(figure, folder / "figures", stem, resolved)[0]
        figures.append((stem, png))
    if not include_machine:
        info = _shareable(info)
    page = _page(info, data.results, tables, figures, data.arrays)
    path = folder / "report.html"
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write {path} ({exc.strerror or exc}); free some space") from exc
    return path


def _write_tables(folder: Path, summary: pd.DataFrame, tables: list[LeaderboardTable]) -> None:
    (folder / "leaderboard.txt").write_text(render_text(tables), encoding="utf-8")
    (folder / "leaderboard.md").write_text(render_markdown(tables), encoding="utf-8")
    (folder / "leaderboard.csv").write_text(render_csv(summary), encoding="utf-8")
    (folder / "leaderboard.tex").write_text(render_latex(tables), encoding="utf-8")
    (folder / "leaderboard.html").write_text(render_html(tables), encoding="utf-8")


def _image(path: Path, caption: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _meta_table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="meta">{cells}</table>'


def _shareable(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` without what identifies a machine or a user's folders: the host name, the
    suite's folder (its file name kept) and a scheduler's address."""
    environment = dict(info["environment"] or {})
    environment["machine"] = {
        k: v for k, v in (environment.get("machine") or {}).items() if k != "hostname"
    }
    if "executor" in environment:
        environment["executor"] = {
            k: v for k, v in environment["executor"].items() if k != "scheduler"
        }
    environment.pop("inputs", None)  # paths of the inputs
    suite_path = info.get("suite_path")
    return {
        **info,
        "environment": environment,
        "suite_path": Path(suite_path).name if suite_path else None,
    }


def _run_section(info: dict[str, Any]) -> str:
    environment = info["environment"] or {}
    git = environment.get("git") or {}
    machine = environment.get("machine") or {}
    stages = info.get("stage_seconds") or {}
    rows = [
        ("run", info["run_id"]),
        ("suite", f"{info['suite_name']} ({info.get('suite_path') or 'inline'})"),
        ("status", info["status"]),
        ("started / finished", f"{info['started_at']} / {info.get('finished_at') or '—'}"),
        ("wall time", " · ".join(f"{k} {v:.1f} s" for k, v in stages.items())),
        ("git commit", f"{git.get('commit', 'unknown')}{' (dirty)' if git.get('dirty') else ''}"),
        ("machine", ", ".join(f"{k}: {v}" for k, v in machine.items())),
        (
            "executor",
            ", ".join(
                f"{k}: {v}" for k, v in environment.get("executor", {"kind": "serial"}).items()
            ),
        ),
        ("packages", ", ".join(f"{k} {v}" for k, v in environment.get("packages", {}).items())),
        ("numerics", ", ".join(f"{k}: {v}" for k, v in environment.get("numerics", {}).items())),
    ]
    return "<h2>Run</h2>" + _meta_table(rows)


def _report_card(results: pd.DataFrame, arrays: dict[str, dict[str, np.ndarray]]) -> str:
    """The metric report card: per dataset × model, one row per explanation metric — does
    it separate the controls (:mod:`harness.meta_evaluation`) and on what differences; its
    noise resilience, adversary reactivity and meta-consistency where the suite
    meta-evaluates it (:mod:`harness.meta_consistency`: mean over seeds [95 % interval],
    flagged when not above chance); and what it costs: the mean wall seconds of its
    ``compute`` per cell (stored as ``<metric>.seconds``; "—" for runs stored before it was
    kept), and of its meta-evaluation (``<metric>.meta_seconds``)."""
    from harness.meta_evaluation import control_separation

    separation = {(c.dataset, c.model, c.metric): c for c in control_separation(results)}
    meta = {(c.dataset, c.model, c.metric): c for c in meta_checks(results)}
    intro = (
        "<h2>Metric report card</h2><p>Does each explanation metric rank the controls as "
        "they are built to rank — oracle above random above inverted (and above an edge "
        "map, where the run has one) — on this dataset and model? Paired by seed, 95 % "
        "Student-t intervals; d<sub>z</sub> = mean difference / its SD over seeds. A metric "
        "that <em>fails</em> is marked in the leaderboard and its claims are inconclusive "
        "unless they opt out. NR, AR and MC (MetaQuantus, for the metrics the suite lists "
        "under <code>[meta_evaluation]</code>): is its per-row value stable under minor "
        "perturbations of model and input that keep the prediction (noise resilience), "
        "does it get worse under disruptive ones that change it (adversary reactivity), "
        "and their mean (meta-consistency); each in [0, 1], higher is better, mean over "
        "seeds [95 % interval]. A metric of pure noise scores NR ≈ (½ + 1/m)/2 with m "
        "explainers and AR ≈ ½ (chance, in brackets); one that returns a constant AR 0. "
        "NR or AR whose mean is below a quarter of the way from chance to 1 is flagged; "
        "undecided when the mean is above that but the interval reaches below.</p>"
    )
    keys = list(dict.fromkeys([*separation, *meta]))
    if not keys:
        return intro + "<p>No metric could be checked: the run has no pair of controls.</p>"
    cells = results.drop_duplicates("cell_id")
    group_of = dict(zip(cells["cell_id"], zip(cells["dataset"], cells["model"], strict=True),
                        strict=True))  # fmt: skip

    def cost(metric: str, key: str, dataset: str, model: str) -> str:
        stored = arrays.get(metric_array(metric, key), {})
        spent = [float(v) for cell, v in stored.items() if group_of.get(cell) == (dataset, model)]
        return f"{np.mean(spent):.3g} s" if spent else "—"

    rows = []
    for dataset, model, metric in keys:
        check, scores = separation.get((dataset, model, metric)), meta.get((dataset, model, metric))
        verdict = "—" if check is None else check.verdict
        evidence = "" if check is None else check.reason
        if check is not None and check.differences:
            evidence = "<br>".join(
                escape(f"{d.text}; d_z {d.effect:.3g} (n = {d.seeds})") for d in check.differences
            )
        else:
            evidence = escape(evidence)
        meta_cells = ["<td>—</td>"] * len(META_SCORES)
        if scores is not None:
            meta_cells = [_meta_entry(scores, which) for which in META_SCORES]
            if scores.flags:
                evidence += "<br>" + "<br>".join(escape(f) for f in scores.flags)
        spent = cost(metric, SECONDS, dataset, model)
        if scores is not None:
            spent += f" + meta {cost(metric, META_SECONDS, dataset, model)}"
        rows.append(
            f"<tr><td>{escape(dataset)}</td><td>{escape(model)}</td>"
            f'<td>{escape(metric)}</td><td class="{escape(verdict)}">'
            f"{escape(verdict)}</td>{''.join(meta_cells)}<td>{evidence}</td>"
            f"<td>{escape(spent)}</td></tr>"
        )
    names = (
        "dataset",
        "model",
        "metric",
        "separates the controls?",
        "NR",
        "AR",
        "MC",
        "evidence",
        "cost per cell",
    )
    head = "".join(f"<th>{h}</th>" for h in names)
    return f'{intro}<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _meta_entry(check: MetaCheck, which: str) -> str:
    """One NR/AR/MC cell: mean [interval] (chance), marked when flagged."""
    mean, low, high = check.summary(which)
    if math.isnan(mean):
        return "<td>undefined</td>"
    interval = "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"
    verdict = check.verdict(which)
    text = f"{mean:.2f}{interval} ({check.chance[which]:.2f})"
    if verdict in ("flagged", "undecided"):
        text += f" {verdict}"
    css = {"flagged": "fails", "clear": "separates"}.get(verdict, "")
    return f'<td class="{css}">{escape(text)}</td>'


def _conventions_section(results: pd.DataFrame) -> str:
    rows = []
    for _, row in results.drop_duplicates("metric").iterrows():
        conventions = json.loads(row["conventions"] or "{}")
        text = "; ".join(f"{k}: {v}" for k, v in conventions.items()) or "—"
        rows.append((f"{row['metric']} ({row['metric_name']}, {row['conventions_hash']})", text))
    return "<h2>Metric conventions</h2>" + _meta_table(rows)


def _cells_section(results: pd.DataFrame) -> str:
    cells = results.drop_duplicates("cell_id")
    parts = ["<h2>Failed and skipped cells</h2>"]
    for status in ("failed", "skipped"):
        chosen = cells[cells["status"] == status]
        if chosen.empty:
            parts.append(f"<p>No {status} cells.</p>")
            continue
        items = "".join(
            f"<li><code>{escape(c)}</code>: {escape(str(e))}</li>"
            for c, e in zip(chosen["cell_id"], chosen["error"], strict=True)
        )
        parts.append(f"<h3>{len(chosen)} {status}</h3><ul>{items}</ul>")
    return "\n".join(parts)


VERDICT_COLOURS = {"holds": "#d9f2df", "fails": "#f8d7d7", "inconclusive": "#fff3c4"}


def _claims_section(config: dict[str, Any], results: pd.DataFrame) -> str:
    """The suite's claims evaluated on this run: one row per claim, and for a claim
    checked ``per`` regime a map of its verdicts — rows: the values of all but the last
    ``per`` parameter, columns: the last one's — with the measured value in each cell."""
    from harness.claims import ClaimError, ClaimSpec, evaluate_all, format_number
    from harness.report.claims import describe_outcome

    claims = [ClaimSpec.model_validate(c) for c in config.get("claims") or []]
    if not claims:
        return ""
    parts = ["<h2>Claims</h2>"]
    for claim in claims:
        title = f"<h3>{escape(claim.id)}: {escape(claim.statement())}</h3>"
        source = f"<p>{escape(claim.source)}: “{escape(claim.text)}”</p>"
        try:
            outcomes = evaluate_all(claim, results)
        except ClaimError as exc:
            parts.append(f"{title}{source}<p>not evaluated: {escape(str(exc))}</p>")
            continue
        cells: dict[tuple[str, str], str] = {}
        for outcome in outcomes:
            regime = [f"{k}={v}" for k, v in outcome.regime]
            row, column = ", ".join(regime[:-1]) or claim.id, regime[-1] if regime else "verdict"
            interval = (
                f" [{format_number(outcome.low)}, {format_number(outcome.high)}]"
                if outcome.has_interval
                else ""
            )
            cells[(row, column)] = (
                f'<td style="background:{VERDICT_COLOURS[outcome.verdict]}" '
                f'title="{escape(describe_outcome(outcome))}">{escape(outcome.verdict)}<br>'
                f"{escape(format_number(outcome.measured) + interval)}</td>"
            )
        rows = list(dict.fromkeys(r for r, _ in cells))
        columns = list(dict.fromkeys(c for _, c in cells))
        header = "".join(f"<th>{escape(c)}</th>" for c in ["", *columns])
        body = "".join(
            f"<tr><th>{escape(r)}</th>"
            + "".join(cells.get((r, c), "<td></td>") for c in columns)
            + "</tr>"
            for r in rows
        )
        parts.append(
            f'{title}{source}<div class="scroll"><table><tr>{header}</tr>{body}</table></div>'
        )
    return "\n".join(parts)


def _page(
    info: dict[str, Any],
    results: pd.DataFrame,
    tables: list[LeaderboardTable],
    figures: list[tuple[str, Path]],
    arrays: dict[str, dict[str, np.ndarray]],
) -> str:
    datasets = list(dict.fromkeys(results["dataset"]))
    body = [f"<h1>xai-harness report: {escape(info['suite_name'])}</h1>", _run_section(info)]
    placed: set[str] = set()
    for dataset, table in zip(datasets, tables, strict=False):
        body.append(f"<h2>Dataset {escape(str(dataset))}</h2>")
        body.append(f'<div class="scroll">{render_html([table])}</div>')
        for stem, png in figures:
            if stem.endswith(f"_{dataset}") or f"_{dataset}_" in stem:
                body.append(_image(png, stem))
                placed.add(stem)
    if len(tables) > len(datasets):
        body.append("<h2>Summary across datasets</h2>")
        body.append(f'<div class="scroll">{render_html(tables[len(datasets) :])}</div>')
    others = [(stem, png) for stem, png in figures if stem not in placed]
    if others:
        body.append("<h2>Figures</h2>")
        body += [_image(png, stem) for stem, png in others]
    body += [
        _report_card(results, arrays),
        _claims_section(info["config"], results),
        _conventions_section(results),
        _cells_section(results),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>xai-harness {escape(info['run_id'])}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}<script>{SORT_SCRIPT}</script></body></html>\n"
    )
