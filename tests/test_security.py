"""Security (issue 13, points 13–16): strings reaching HTML are escaped for their
context, nothing in an OpenML cache is unpickled, a suite's folder cannot shadow a
library, and JUnit XML stays well-formed."""

from __future__ import annotations

import importlib.util
import pickle
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import run_suite
from harness.datasets import dataset_registry
from harness.suite import load_suite, parse_suite
from tests.conftest import ONE_SEED_SUITE, cli
from tests.test_claims import CLAIMS

HOSTILE = ONE_SEED_SUITE.replace('name = "tiny"', 'name = "x --><script>alert(1)<!--"')
HOSTILE = HOSTILE.replace('id = "syn"', 'id = "<img src=x onerror=alert(2)>"')


class _Elements(HTMLParser):
    """The start tags and comments an HTML parser sees."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile")
    run_suite(parse_suite(HOSTILE), out)
    return out


def test_html_output_escapes_ids_and_the_suite_name_even_inside_a_comment(
    hostile_run: Path,
) -> None:
    result = cli("show", "--out", str(hostile_run), "--format", "html")
    assert result.exit_code == 0, result.stderr
    parsed = _Elements()
    parsed.feed(result.stdout)
    assert "script" not in parsed.tags and "img" not in parsed.tags, parsed.tags
    assert len(parsed.comments) == 1  # the header comment did not end early
    assert "-->" not in parsed.comments[0] and "alert(1)" in parsed.comments[0]


def test_markdown_output_escapes_html_in_ids(hostile_run: Path) -> None:
    result = cli("show", "--out", str(hostile_run), "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    assert "<script>" not in result.stdout and "<img" not in result.stdout
    assert "&lt;img src=x onerror=alert(2)&gt;" in result.stdout


def test_the_html_report_has_no_element_from_a_string_of_the_store(
    hostile_run: Path, tmp_path: Path
) -> None:
    result = cli("report", "--out", str(hostile_run), "--to", str(tmp_path / "report"))
    assert result.exit_code == 0, result.stderr
    parsed = _Elements()
    parsed.feed((tmp_path / "report" / "report.html").read_text())
    assert "img" in parsed.tags  # the figures are images…
    assert "script" in parsed.tags  # …and the sorting script is the page's own
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page


# --- point 14: no unpickling from an OpenML cache ----------------------------------------


class _Planted:
    """Unpickling this writes a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


def test_a_pickle_planted_in_the_openml_cache_is_never_loaded(
    openml_cache: Path, tmp_path: Path
) -> None:
    folder = openml_cache / "org/openml/www/datasets/2"
    marker = tmp_path / "marker"
    for name in ("dataset.pkl.py3", "dataset.feather.attributes.pkl.py3"):
        (folder / name).write_bytes(pickle.dumps(_Planted(marker)))
    (folder / "dataset.feather").write_bytes(b"not feather")
    data = dataset_registry.get("openml")(data_id=2, cache_dir=openml_cache).load(0)
    assert not marker.exists(), "a pickle from the cache was unpickled"
    assert data.class_names == ["1", "2", "3", "5", "U"]
    by_name = dataset_registry.get("openml")(name="anneal", cache_dir=openml_cache).load(0)
    assert not marker.exists()
    assert by_name.x_train.shape == data.x_train.shape


def test_the_openml_table_is_the_one_openml_parses(openml_cache: Path) -> None:
    """Differential: the ARFF read without openml's pickles equals openml's own frame."""
    import openml

    from harness.datasets.openml_files import data_file, read_frame

    folder = openml_cache / "org/openml/www/datasets/2"
    ours = read_frame(data_file(folder, 2))
    reference = openml_cache.parent / "reference-cache"
    shutil.copytree(openml_cache, reference)
    openml.config.set_root_cache_directory(reference)
    openml.config.set_retry_policy("human", 1)
    theirs, *_ = openml.datasets.get_dataset(2, download_data=True).get_data()
    assert list(ours.columns) == list(theirs.columns)
    for column in theirs.columns:
        if theirs[column].dtype == "category":
            assert list(ours[column].cat.categories) == list(theirs[column].cat.categories)
            assert ours[column].astype(object).equals(theirs[column].astype(object)), column
        else:
            assert ours[column].astype(float).equals(theirs[column].astype(float)), column


# --- point 15: a suite's folder does not shadow libraries --------------------------------


def test_a_file_beside_a_suite_cannot_shadow_a_library(tmp_path: Path) -> None:
    (tmp_path / "shap.py").write_text("raise RuntimeError('the fake shap was imported')\n")
    (tmp_path / "dask.py").write_text("raise RuntimeError('the fake dask was imported')\n")
    suite = tmp_path / "suite.toml"
    suite.write_text(ONE_SEED_SUITE)
    load_suite(suite)
    assert str(tmp_path) in sys.path
    for library in ("shap", "dask"):
        origin = importlib.util.find_spec(library).origin  # type: ignore[union-attr]
        assert origin is not None and not origin.startswith(str(tmp_path)), origin


def test_validate_help_and_readme_say_that_suites_run_local_code() -> None:
    result = cli("validate", "--help")
    assert "runs its code" in " ".join(result.stdout.split())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "runs that code" in readme and "Dask pickles" in readme


# --- point 16: JUnit XML -----------------------------------------------------------------

#: The first claim of the claims tests, its source and text full of control characters.
CLAIM = (
    CLAIMS.split("\n\n[[claims]]")[0]
    .replace('"by construction"', '"a paper with \\u0007bell and \\u001b[31m escapes & <tags>"')
    .replace('"the oracle recovers the ground truth"', '"oracle \\u0000 is perfect\\u000b"')
)


def test_junit_xml_is_well_formed_whatever_a_claim_says(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(ONE_SEED_SUITE + CLAIM)
    out, junit = tmp_path / "out", tmp_path / "claims.xml"
    result = cli("check", str(suite), "--out", str(out), "--run-missing", "--junit", str(junit))
    # one seed never decides a claim: inconclusive, a failing test case with the text
    assert result.exit_code == 1, result.stdout + result.stderr
    root = ET.parse(junit).getroot()  # raises on a control character
    (case,) = root.iter("testcase")
    text = case.find("system-out").text  # type: ignore[union-attr]
    assert text is not None and "escapes & <tags>" in text and "is perfect" in text
