"""Validation before anything runs (issue 13, point 12, and the property-based test of
malformed suites): numbers are checked for their domain with the valid range in the
message, and no malformed suite ever leads to a traceback or to a plan that cannot run."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.datasets.base import DatasetCard
from harness.datasets.tables import DatasetError, TableParams, table_dataset
from harness.explainers.base import ExplainContext
from harness.models.base import TrainedModel
from harness.runner.plan import plan
from harness.suite import parse_suite
from tests.conftest import ONE_SEED_SUITE, assert_user_error, cli
from tests.suite_builder import toml_key, toml_value


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("seeds = [0]", "seeds = [-1]", ["seeds[0]", "valid range: 0 ≤ seeds < 4294967296"]),
        ("seeds = [0]", "seeds = [4294967296]", ["seeds[0]", "less than 4294967296"]),
        ("seeds = [0]", "seeds = [true]", ["seeds[0]", "valid integer", "True"]),
        ("seeds = [0]", 'seeds = ["1"]', ["seeds[0]", "valid integer"]),
        ("seeds = [0]", "seeds = [1.0]", ["seeds[0]", "valid integer"]),
        ("hidden = [32]", "hidden = [0]", ["hidden[0]", "valid range: 1 ≤ hidden ≤ 65536"]),
        ("hidden = [32]", "hidden = [32], learning_rate = nan", ["learning_rate", "finite"]),
        ("hidden = [32]", "hidden = [32], learning_rate = -1.0", ["learning_rate", "greater"]),
        ("hidden = [32]", "hidden = [32], weight_decay = inf", ["weight_decay", "finite"]),
        ("epochs = 15", "epochs = true", ["epochs", "valid integer"]),
        ("epochs = 15", "epochs = 15.5", ["epochs", "valid integer"]),
        ("class_sep = 2.0", "class_sep = inf", ["class_sep", "finite"]),
        ("n_samples = 600", "n_samples = 1000000000",
         ["n_samples", "valid range: 20 ≤ n_samples ≤ 10000000"]),
        ("n_samples = 600, n_features = 8", "n_samples = 10000000, n_features = 100",
         ["n_samples × n_features", "≤ 200,000,000"]),
        ("n_steps = 16", "n_steps = 1000000000", ["n_steps", "valid range: 1 ≤ n_steps ≤ 10000"]),
        ("explain_rows = 50", 'explain_rows = "50"', ["explain_rows", "valid integer"]),
        ("n_informative = 3", "n_informative = 9", ["exceeds n_features (8)"]),
    ],
)  # fmt: skip
def test_numbers_are_checked_for_their_domain(
    old: str, new: str, fragments: list[str], write_suite: Callable[..., Path]
) -> None:
    assert old in ONE_SEED_SUITE
    path = write_suite(ONE_SEED_SUITE.replace(old, new, 1))
    assert_user_error(cli("validate", str(path)), str(path), *fragments)


def test_planted_columns_not_in_the_table_are_refused_before_running(
    write_suite: Callable[..., Path],
) -> None:
    text = ONE_SEED_SUITE.replace(
        'name = "synthetic_tabular"\nparams = { n_samples = 600, n_features = 8, '
        "n_informative = 3, class_sep = 2.0 }",
        'name = "planted"\nparams = { source = "iris", columns = ["petal lenght (cm)"] }',
    )
    assert "planted" in text
    path = write_suite(text)
    assert_user_error(
        cli("validate", str(path)), "datasets[0].params", "no column 'petal lenght (cm)'",
        "did you mean 'petal length (cm)'",
    )  # fmt: skip


# --- property-based: malformed suite files -------------------------------------------------

BASE = tomllib.loads(ONE_SEED_SUITE)


def to_toml(data: dict[str, Any]) -> str:
    return "\n".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items()) + "\n"


def test_the_toml_writer_round_trips() -> None:
    assert tomllib.loads(to_toml(BASE)) == BASE


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``data`` (dict keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


ODD_TEXT = st.sampled_from(["", "a/b", "..", "x\x00y", "tab\t", "<b>", "-->", "λ", " x", "ok"])
#: Values at the edges of the domains that matter: seeds, sizes, rates, booleans, text.
EDGES = st.sampled_from([0, 1, -1, 2, 20, 2**31, 2**32 - 1, 2**32, 10**9, 10**12, -(10**12),
                         0.0, -0.0, 0.5, 1.5, 1e300, -1e-300, math.nan, math.inf, -math.inf,
                         True, False, "3", "auto", "1e3"])  # fmt: skip
VALUES = st.one_of(
    EDGES,
    EDGES,
    ODD_TEXT,
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.one_of(EDGES, st.integers(-3, 70)), max_size=3),
    st.dictionaries(st.sampled_from(["n_steps", "hidden", "zz", "params"]), EDGES, max_size=2),
)


@st.composite
def malformed_suites(draw: st.DrawFn) -> dict[str, Any]:
    """The one-seed suite with one to three mutations: a value replaced (wrong type, out
    of range, odd text; scalar values most often), a key removed, an unknown key added,
    or an entry repeated under another id."""
    data = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        scalars = [p for p in paths if not isinstance(_at(data, p), dict | list)]
        path = draw(st.sampled_from(scalars if scalars and draw(st.booleans()) else paths))
        *parents, last = path
        holder = _at(data, tuple(parents))
        action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add",
                                       "repeat"]))  # fmt: skip
        if action == "replace":
            holder[last] = draw(VALUES)
        elif action == "remove":
            del holder[last]
        elif action == "add" and isinstance(holder, dict):
            holder[draw(st.sampled_from(["extra", "n_stepz", "id", "seed"]))] = draw(VALUES)
        elif action == "repeat":
            section = draw(st.sampled_from(["datasets", "models", "explainers"]))
            if isinstance(data.get(section), list) and data[section]:
                entry = json.loads(json.dumps(data[section][0]))
                if isinstance(entry, dict):
                    entry["id"] = draw(ODD_TEXT)
                data[section].append(entry)
    return data


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _runnable(path: Path) -> None:
    """Every cell of a valid plan can run: its dataset loads, its model builds and
    predicts, and its explainer explains two rows — small datasets only (a valid but
    large one is not this test's business)."""
    suite = parse_suite(path.read_text(), path=path)
    cells = plan(suite)
    assert len({cell.cell_id for cell in cells}) == len(cells)  # every cell has its own id
    for cell in cells:
        if cell.skip_reason:
            continue
        config = cell.dataset.component.config()
        if config.get("n_samples", 0) * config.get("n_features", 0) > 200_000:
            continue
        dataset = cell.dataset.component.load(cell.seed)
        module = cell.model.component.build(dataset).eval()
        model = TrainedModel(module=module, device=__import__("torch").device("cpu"),
                             train_seconds=0.0, epochs_trained=0)  # fmt: skip
        rows = np.arange(min(2, len(dataset.x_test)))
        targets = model.predict(dataset.x_test[rows])
        context = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows)
        explanation = cell.explainer.component.explain(model, dataset.x_test[rows], targets,
                                                       context)  # fmt: skip
        assert explanation.problem(len(rows), dataset.attribution_shape) is None


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=malformed_suites())
def test_a_malformed_suite_is_error_lines_or_a_runnable_plan(
    data: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    result = cli("validate", str(path))
    output = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in output
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and all(line.startswith("error: ") for line in lines), result.stderr
    else:
        assert result.exit_code == 0, output
        _runnable(path)


# --- small ones ----------------------------------------------------------------------------


def test_the_non_finite_error_names_the_right_column_after_a_categorical_one() -> None:
    """Regression: a categorical column before the bad numeric one made the message
    name the categorical column (an encoded feature's index used as a column index)."""
    frame = pd.DataFrame({
        "colour": ["red", "blue", "green", "red"] * 10,
        "weight": [1.0, 2.0, 3.0, 1e300] * 10,  # beyond float32: infinite after encoding
    })  # fmt: skip
    labels = pd.Series(["a", "b"] * 20)
    with pytest.raises(DatasetError, match=r"\(columns weight\)"):
        table_dataset("t", frame, labels, TableParams(), 0, DatasetCard(source="", licence=""))
