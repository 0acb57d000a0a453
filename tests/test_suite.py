"""Suite files: loading, resolution, and one clear line per mistake."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.suite import SuiteError, bundled_suites, find_suite, load_suite, parse_suite
from tests.conftest import TINY_SUITE


def test_bundled_quick_suite_loads_with_defaults_filled() -> None:
    suite = load_suite("quick")
    assert suite.name == "quick"
    assert [d.id for d in suite.datasets] == ["synthetic_10_5", "synthetic_16_5"]
    config = suite.resolved_config()
    ig = next(e for e in config["explainers"] if e["name"] == "integrated_gradients")
    assert ig["params"]["method"] == "gausslegendre"  # default filled in, not in the file
    assert config["execution"]["explain_rows"] == 200


def test_suite_by_path_and_by_name_are_the_same_file() -> None:
    assert find_suite("quick") == bundled_suites()["quick"]
    assert find_suite(str(bundled_suites()["quick"])) == bundled_suites()["quick"]


def test_seeds_override() -> None:
    assert parse_suite(TINY_SUITE, seeds=[5, 6, 7]).spec.seeds == [5, 6, 7]


def test_metric_tables_with_id_and_params() -> None:
    text = TINY_SUITE.replace(
        'metrics = ["accuracy",',
        'metrics = [{ name = "spearman_gt", id = "spearman_signed", params = { sign = "raw" } },'
        ' "accuracy",',
    )
    suite = parse_suite(text)
    signed = suite.metrics[0]
    assert signed.id == "spearman_signed" and signed.component.config() == {"sign": "raw"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'name = "integrated_gradients"',
            'name = "integrated_gradient"',
            r"explainers\[0\]\.name: unknown explainer 'integrated_gradient'; "
            r"did you mean 'integrated_gradients'\?",
        ),
        (
            'name = "synthetic_tabular"',
            'name = "synthetic_tabulr"',
            r"datasets\[0\]\.name: unknown dataset 'synthetic_tabulr'; "
            r"did you mean 'synthetic_tabular'\?",
        ),
        (
            '"kendall_gt"',
            '"kendal_gt"',
            r"metrics\[2\]\.name: unknown metric 'kendal_gt'; did you mean 'kendall_gt'\?",
        ),
        (
            "n_steps = 16",
            "n_stepz = 16",
            r"explainers\[0\]\.params\.n_stepz: unknown parameter 'n_stepz' of explainer "
            r"'integrated_gradients'; did you mean 'n_steps'\?",
        ),
        (
            "seeds = [0, 1]",
            "seedz = [0, 1]",
            r"seedz: unknown key 'seedz'; did you mean 'seeds'\?",
        ),
        (
            'id = "syn"',
            'idd = "syn"',
            r"datasets\[0\]\.idd: unknown key 'idd'; did you mean 'id'\?",
        ),
        ("explain_rows = 50", "explain_rowz = 50", r"execution\.explain_rowz: unknown key"),
        ("seeds = [0, 1]", 'seeds = "zero"', r"seeds: Input should be a valid list"),
        ("seeds = [0, 1]", "seeds = [1, 1]", r"seeds: seeds repeat: \[1, 1\]"),
        (
            "explain_rows = 50",
            "explain_rows = 0",
            r"execution\.explain_rows: .*greater than or equal to 1; "
            r"valid range: 1 ≤ explain_rows ≤ 10000000 \(got 0\)",
        ),
        (
            "n_informative = 3",
            "n_informative = 30",
            r"datasets\[0\]\.params: n_informative \+ n_redundant \(30\) exceeds n_features \(8\)",
        ),
        ("epochs = 15", 'epochs = "many"', r"models\[0\]\.params\.epochs: .*valid integer"),
        ('[[explainers]]\nname = "random"', '[[explainers]]\nname = "oracle"', r"used twice"),
        ('name = "tiny"\n', "", r"name: required key is missing"),
    ],
)
def test_mistakes_name_the_file_key_and_fix(
    write_suite: Callable[..., Path], old: str, new: str, expected: str
) -> None:
    assert old in TINY_SUITE
    path = write_suite(TINY_SUITE.replace(old, new, 1))
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: ")
    assert re.search(expected, lines[0]), lines[0]


def test_toml_syntax_error_names_the_line(write_suite: Callable[..., Path]) -> None:
    path = write_suite(TINY_SUITE.replace("seeds = [0, 1]", "seeds = [0, 1"))
    with pytest.raises(SuiteError, match=r"TOML syntax error: .*line 5") as caught:
        load_suite(path)
    assert str(caught.value).startswith(str(path))


def test_every_problem_is_reported_at_once(write_suite: Callable[..., Path]) -> None:
    text = TINY_SUITE.replace("n_steps = 16", "n_stepz = 16").replace(
        'name = "random"', 'name = "randm"'
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(write_suite(text))
    assert len(str(caught.value).splitlines()) == 2


def test_missing_suite_file_and_unknown_bundled_name() -> None:
    with pytest.raises(SuiteError, match=r"suite file 'nowhere/x\.toml' not found"):
        load_suite("nowhere/x.toml")
    with pytest.raises(SuiteError, match="did you mean 'quick'"):
        load_suite("quik")


def test_local_plugin_next_to_the_suite_file(write_suite: Callable[..., Path]) -> None:
    path = write_suite(
        TINY_SUITE.replace('name = "random"', 'name = "suite_local_plugin:Constant"')
    )
    (path.parent / "suite_local_plugin.py").write_text(
        "import numpy as np\n"
        "from harness.explainers import Explainer, Explanation\n"
        "class Constant(Explainer):\n"
        '    """Ones."""\n'
        "    def explain(self, model, inputs, targets, context):\n"
        "        return Explanation(local=np.ones(inputs.shape))\n"
    )
    suite = load_suite(path)
    assert suite.explainers[2].name == "suite_local_plugin:Constant"
    assert suite.explainers[2].id == "suite_local_plugin:Constant"


TOML_PIECES = st.sampled_from(
    [
        'name = "x"\n',
        "seeds = [0]\n",
        "seeds = []\n",
        'metrics = ["accuracy"]\n',
        "metrics = [1]\n",
        '[[datasets]]\nname = "synthetic_tabular"\n',
        '[[models]]\nname = "mlp"\n',
        '[[explainers]]\nname = "oracle"\n',
        "params = { n_steps = -1 }\n",
        "params = 3\n",
        "[execution]\n",
        'device = "tpu"\n',
        "id = 7\n",
        "[[datasets]]\n",
        "= broken\n",
        '"unterminated\n',
    ]
)


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(TOML_PIECES, max_size=12))
def test_any_combination_of_pieces_parses_or_fails_cleanly(pieces: list[str]) -> None:
    try:
        parse_suite("".join(pieces))
    except SuiteError as exc:
        assert str(exc).strip()
        assert all(line.startswith("<suite>: ") for line in str(exc).splitlines())


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_suite(text)
    except SuiteError as exc:
        assert str(exc).startswith("<suite>: ")


@pytest.mark.parametrize("name", sorted(bundled_suites()))
def test_every_bundled_suite_validates(name: str) -> None:
    suite = load_suite(name)
    assert suite.spec.name == name and suite.explainers and suite.metrics
