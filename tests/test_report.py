"""`xai-harness report`: a self-contained report.html, opened in headless Chromium.

The browser test needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them
with apt when missing) and selenium (in the [test] extra); without them it skips, saying so.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import run_suite
from harness.cli import app
from harness.suite import SuiteError, parse_suite
from tests.conftest import ONE_SEED_SUITE, TINY_SUITE, cli

REPORT_SUITE = (
    TINY_SUITE
    + """
[[explainers]]
name = "sample_plugins:FailingExplainer"
id = "failing"

[[explainers]]
name = "grad_cam"

[[figures]]
kind = "metric"
metric = "spearman_gt"
name = "paper_figure_2"
explainers = ["integrated_gradients", "oracle"]
"""
)


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys

    plugins = str(Path(__file__).parent / "plugins")
    sys.path.insert(0, plugins)
    try:
        out = tmp_path_factory.mktemp("report")
        run_suite(parse_suite(REPORT_SUITE), out)
    finally:
        sys.path.remove(plugins)
    result = CliRunner().invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return next((out / "reports").iterdir())


def test_report_folder_has_the_page_figures_and_tables_in_every_format(report_run: Path):
    names = {p.name for p in report_run.iterdir()}
    assert {"report.html", "leaderboard.txt", "leaderboard.md", "leaderboard.csv",
            "leaderboard.tex", "leaderboard.html", "figures"} <= names  # fmt: skip
    figures = {p.name for p in (report_run / "figures").iterdir()}
    assert {"paper_figure_2.png", "paper_figure_2.pdf", "metric_spearman_gt.png"} <= figures


def test_report_html_is_self_contained_and_shows_failures_skips_and_conventions(
    report_run: Path,
) -> None:
    page = (report_run / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "http://" not in page and "https://" not in page
    assert "RuntimeError: deliberate failure" in page  # the failed cell's reason
    assert "handles image data; dataset &#x27;syn&#x27; is tabular" in page  # grad_cam: skipped
    assert "average ranks" in page  # spearman_gt's tie convention
    assert page.count('<table class="leaderboard">') == 2  # the dataset + the rank summary


def test_declared_figures_are_validated_against_the_suite() -> None:
    bad = REPORT_SUITE.replace('metric = "spearman_gt"', 'metric = "spearman"')
    with pytest.raises(SuiteError, match=r"figures\[0\]\.metric: 'spearman' is not a metric id"):
        parse_suite(bad)
    missing = REPORT_SUITE.replace('metric = "spearman_gt"\n', "")
    with pytest.raises(SuiteError, match="kind 'metric' needs `metric`"):
        parse_suite(missing)


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt install chromium "
                    "chromium-driver; .ci/run does this)")  # fmt: skip
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium ([test] extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_report_renders_in_headless_chromium(report_run: Path) -> None:
    browser = _browser()
    from selenium.webdriver.common.by import By

    try:
        browser.get((report_run / "report.html").resolve().as_uri())
        tables = browser.find_elements(By.CSS_SELECTOR, "table.leaderboard")
        assert len(tables) == 2
        rows = tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 5  # IG, oracle, random, failing, grad_cam
        assert all(r.is_displayed() for r in rows)
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert images and all(done and width > 0 for done, width in images)
        # sort by spearman_gt: ascending, then descending on a second click
        header = next(h for h in tables[0].find_elements(By.TAG_NAME, "th")
                      if h.text.startswith("spearman_gt"))  # fmt: skip
        column = tables[0].find_elements(By.TAG_NAME, "th").index(header)

        def column_values() -> list[float]:
            cells = [r.find_elements(By.TAG_NAME, "td")[column]
                     for r in tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")]  # fmt: skip
            return [float(c.get_attribute("data-value")) for c in cells
                    if c.get_attribute("data-value") is not None]  # fmt: skip

        header.click()
        ascending = column_values()
        assert len(ascending) == 3 and ascending == sorted(ascending)
        header.click()
        assert column_values() == sorted(ascending, reverse=True)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        screenshot = report_run / "report-screenshot.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    finally:
        browser.quit()


def test_the_report_is_safe_to_share_unless_told_otherwise(tmp_path: Path) -> None:
    import platform

    suite = tmp_path / "private-folder" / "tiny.toml"
    suite.parent.mkdir()
    suite.write_text(ONE_SEED_SUITE)
    out = tmp_path / "out"
    run_suite(suite, out)
    shared = cli("report", "--out", str(out), "--to", str(tmp_path / "shared"))
    assert shared.exit_code == 0, shared.output
    page = (tmp_path / "shared/report.html").read_text()
    assert "tiny.toml" in page and "numerics" in page
    assert str(tmp_path) not in page and "private-folder" not in page
    assert f"hostname: {platform.node()}" not in page
    full = cli("report", "--out", str(out), "--to", str(tmp_path / "full"), "--include-machine")
    assert full.exit_code == 0, full.output
    page = (tmp_path / "full/report.html").read_text()
    assert str(suite) in page and f"hostname: {platform.node()}" in page
