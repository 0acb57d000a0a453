"""``examples/notebook.ipynb`` — own model and data → leaderboard → figure → claim →
MLflow — executed as a user would, so it never goes stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebook.ipynb"


@pytest.mark.slow
def test_the_notebook_runs_and_shows_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend
    shutil.copy(NOTEBOOK, tmp_path)
    notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,  # seconds per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any('<table class="leaderboard">' in page for page in html), html  # rendered inline
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure, inline
    assert any("ig_deletes_faster_than_random" in page for page in html)  # the verdicts
    assert (tmp_path / "notebook_results" / "harness.sqlite").is_file()
    assert (tmp_path / "notebook_results" / "mlflow.db").is_file()
    text = "".join(str(o.get("text", "")) for o in outputs)
    assert "report.html" in text


def test_the_notebook_progress_bar_counts_cells(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.runner.progress import NotebookProgress, RichProgress, default_progress

    assert isinstance(default_progress(), RichProgress)  # not in a Jupyter kernel here
    bar = NotebookProgress()
    bar.start("tiny (run 1)", 2)
    bar.stage("syn__mlp__saliency__s0", "explain")
    bar.cell_done("syn__mlp__saliency__s0", "ok")
    bar.cell_done("syn__mlp__saliency__s1", "failed")
    bar.finish()
    shown = capsys.readouterr().err
    assert "tiny (run 1)" in shown and "2/2" in shown and "failed syn__mlp__saliency__s1" in shown
