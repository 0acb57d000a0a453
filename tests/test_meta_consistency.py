"""Issue 29 (3b–d): MetaQuantus's noise resilience, adversary reactivity and
meta-consistency — equal to the ``metaquantus`` package on the same values, the cases
made by hand (a constant metric, a metric of noise), and a run that stores them."""

from __future__ import annotations

import functools
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import load_results, run_suite
from harness.meta_consistency import TESTS, MetaCheck, chance_levels, meta_checks, meta_consistency
from harness.metrics.base import Evidence, Metric
from harness.metrics.localisation import PointingGame
from harness.metrics.randomisation import MPRT
from harness.metrics.reexplaining import Reexplainer
from harness.metrics.sanity_revisited import EfficientMPRT
from harness.report.aggregate import summarise
from harness.report.html_report import write_report
from harness.rescoring import rescore_run
from harness.runner.meta_perturbation import perturbed_network, row_values
from harness.store import load_arrays
from tests.conftest import assert_user_error, cli
from tests.suite_builder import suite

MQ_TESTS = {
    "model_resilience": "Model Resilience Test",
    "model_adversary": "Model Adversary Test",
    "input_resilience": "Input Resilience Test",
    "input_adversary": "Input Adversary Test",
}
SCORES = ("IAC_NR", "IAC_AR", "IEC_NR", "IEC_AR")


def metaquantus_scores(
    q: np.ndarray,
    q_hat: np.ndarray,
    unchanged: np.ndarray,
    higher_is_better: bool,
    ties: bool = False,
) -> dict[tuple[str, str], float]:
    """MetaQuantus 0.0.5's scores of the same values: its ``MetaEvaluation`` with its
    perturbation results filled in (one iteration), then its own analyses. With ``ties``
    its Wilcoxon test is given scipy's normal approximation, as scipy's ``auto`` chose
    when MetaQuantus was written (today's runs a random permutation test)."""
    metaquantus = pytest.importorskip(
        "metaquantus", reason="metaquantus (the [test] extra) cannot be imported"
    )
    methods = [f"m{e}" for e in range(len(q))]
    evaluation = metaquantus.MetaEvaluation(
        test_suite={MQ_TESTS[t]: None for t in TESTS},
        xai_methods={m: {} for m in methods},
        iterations=1,
        nr_perturbations=q_hat.shape[1],
        write_to_file=False,
        intra_measure=functools.partial(scipy.stats.wilcoxon, method="asymptotic")
        if ties
        else scipy.stats.wilcoxon,
    )
    evaluation.results_eval_scores = {
        MQ_TESTS[t]: {m: q[e] for e, m in enumerate(methods)} for t in TESTS
    }
    evaluation.results_eval_scores_perturbed = {
        MQ_TESTS[t]: {0: {m: q_hat[i, :, e] for e, m in enumerate(methods)}}
        for i, t in enumerate(TESTS)
    }
    evaluation.results_indices_perturbed = {
        MQ_TESTS[t]: {0: unchanged[i] if t.endswith("resilience") else ~unchanged[i]}
        for i, t in enumerate(TESTS)
    }
    evaluation.results_y_preds = np.zeros(q.shape[1], dtype=int)
    evaluation.run_intra_analysis()
    # its adversary condition counts q* < q̂ when score_direction is true: lower is better
    evaluation.run_inter_analysis(score_direction=not higher_is_better)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = evaluation.run_meta_consistency_analysis()
    return {
        (kind.lower(), s): results[kind]["consistency_results"][f"{s.replace('_', '_{')}}} mean"]
        for kind in ("Model", "Input")
        for s in SCORES
    }


@settings(max_examples=25, deadline=None)
@given(
    explainers=st.integers(2, 5),
    rows=st.integers(6, 30),
    draws=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    higher_is_better=st.booleans(),
    ties=st.booleans(),
)
def test_equal_to_metaquantus_on_the_same_values(
    explainers: int, rows: int, draws: int, seed: int, higher_is_better: bool, ties: bool
) -> None:
    rng = np.random.default_rng(seed)
    q = rng.random((explainers, rows))
    scale = np.array([0.05, 1.0, 0.05, 1.0])[:, None, None, None]  # resilience: small
    q_hat = q[None, None] + scale * rng.normal(size=(4, draws, explainers, rows))
    if ties:  # a binary metric (pointing game): values tie, differences are 0
        q, q_hat = (q > 0.5).astype(float), (q_hat > 0.5).astype(float)
    unchanged = rng.random((4, draws, rows)) < np.array([0.9, 0.3, 0.9, 0.4])[:, None, None]
    unchanged[0::2, :, :2] = True  # every perturbation keeps rows in each test (none: the
    unchanged[1::2, :, 2:4] = False  # harness leaves it out, MetaQuantus's mean is NaN)
    ours = meta_consistency(q, q_hat, unchanged, higher_is_better)
    theirs = metaquantus_scores(q, q_hat, unchanged, higher_is_better, ties)
    for key, value in theirs.items():
        assert ours.components[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    for kind in ("model", "input"):
        mc = np.mean([theirs[(kind, s)] for s in SCORES])
        assert np.mean([ours.components[(kind, s)] for s in SCORES]) == pytest.approx(mc)
    assert ours.mc == pytest.approx(np.mean(list(theirs.values())))


def test_a_constant_metric_gets_nr_1_and_ar_0_and_is_flagged() -> None:
    q = np.full((3, 20), 0.5)
    unchanged = np.zeros((4, 3, 20), dtype=bool)
    unchanged[0::2] = True  # resilience keeps every row, adversaries change every one
    result = meta_consistency(q, np.full((4, 3, 3, 20), 0.5), unchanged, True)
    # Wilcoxon of all-zero differences (zsplit): p = 1; nothing gets worse; ranks stay
    assert result.nr == 1.0 and result.ar == 0.0 and result.mc == 0.5
    check = MetaCheck("d", "m", "constant", {"nr": (1.0,) * 3, "ar": (0.0,) * 3,
                                             "mc": (0.5,) * 3}, chance_levels(3))  # fmt: skip
    assert check.flagged("ar") and not check.flagged("nr")
    assert check.flags == [
        "not reactive to adversaries: AR 0.000 is not clearly above chance (0.500; clearly "
        "above: ≥ 0.625)"
    ]


def test_a_metric_of_noise_scores_chance_and_is_flagged() -> None:
    """Noise drawn afresh at each call: the Wilcoxon p-value is uniform (IAC_NR, IAC_AR
    ≈ ½), a random order keeps a place with chance 1/m (IEC_NR ≈ 1/m), worse or better
    equally often (IEC_AR ≈ ½) — computed over many draws, and a noise metric's seeds are
    flagged while a metric clearly above chance is not."""
    rng = np.random.default_rng(0)
    explainers, draws, rows = 4, 200, 30
    unchanged = np.zeros((4, draws, rows), dtype=bool)
    unchanged[0::2] = True
    q = rng.random((explainers, rows))
    result = meta_consistency(q, rng.random((4, draws, explainers, rows)), unchanged, True)
    for kind in ("model", "input"):
        assert result.components[(kind, "IAC_NR")] == pytest.approx(0.5, abs=0.04)
        assert result.components[(kind, "IAC_AR")] == pytest.approx(0.5, abs=0.04)
        assert result.components[(kind, "IEC_NR")] == pytest.approx(1 / explainers, abs=0.02)
        # a fresh uniform draw falls below q with chance q: IEC_AR → the mean of q
        assert result.components[(kind, "IEC_AR")] == pytest.approx(q.mean(), abs=0.01)
    chance = chance_levels(explainers)
    assert result.nr == pytest.approx(chance["nr"], abs=0.03)  # (½ + ¼)/2 = 0.375
    assert result.ar == pytest.approx((0.5 + q.mean()) / 2, abs=0.03)
    # two seeds of the noise metric in a run (below): close together, just above chance
    noisy = MetaCheck("d", "m", "noise", {"nr": (0.433, 0.435), "ar": (0.52, 0.47),
                                          "mc": (0.44, 0.44)}, chance_levels(3))  # fmt: skip
    assert noisy.flagged("nr") and noisy.flagged("ar")
    assert noisy.verdict("nr") == "flagged"
    unsure = MetaCheck("d", "m", "unsure", {"nr": (0.9, 0.5, 0.7), "ar": (0.9, 0.95, 0.92),
                                            "mc": (0.7, 0.7, 0.7)}, chance_levels(3))  # fmt: skip
    assert unsure.verdict("nr") == "undecided" and unsure.verdict("ar") == "clear"
    assert unsure.flags == []
    good = MetaCheck("d", "m", "good", {"nr": (0.8, 0.85, 0.82), "ar": (0.9, 0.95, 0.92),
                                        "mc": (0.85, 0.9, 0.87)}, chance)  # fmt: skip
    assert good.flags == []


def test_a_perturbation_keeping_no_row_leaves_its_score_undefined() -> None:
    unchanged = np.ones((4, 2, 5), dtype=bool)  # no adversary changed a prediction
    q, q_hat = (
        np.random.default_rng(1).random((2, 5)),
        np.random.default_rng(2).random((4, 2, 2, 5)),
    )
    result = meta_consistency(q, q_hat, unchanged, True)
    assert not math.isnan(result.nr) and math.isnan(result.ar) and math.isnan(result.mc)
    assert result.undefined == ["model IAC_AR", "model IEC_AR", "input IAC_AR", "input IEC_AR"]


def test_per_row_values_are_the_metric_on_each_row_alone() -> None:
    """The pointing game of each row alone, by hand: a hit (1), a miss (0), no lesion
    (undefined); the explainer run again is asked for the row it stands for."""
    maps = np.zeros((3, 4, 4))
    maps[0, 1, 1] = maps[1, 3, 3] = maps[2, 0, 0] = 1.0
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, 1, 1] = masks[1, 0, 0] = True
    evidence = Evidence(attributions=maps, masks=masks, inputs=maps, targets=np.zeros(3, int))
    values = row_values(PointingGame(tolerance=0), evidence)
    assert values[:2].tolist() == [1.0, 0.0] and math.isnan(values[2])
    asked: list[list[int]] = []
    again = Reexplainer(torch.nn.Linear(1, 1), lambda n, x, t, p: asked.append(list(p)) or x)
    again.at([7, 9])(maps[:1], np.zeros(1, int), np.array([1]))
    assert asked == [[9]]


def _gradient(network: torch.nn.Module, inputs, targets, positions) -> np.ndarray:
    """|∂ logit / ∂ x| of each row (a small saliency explainer for the tests)."""
    x = torch.tensor(inputs, dtype=torch.float32, requires_grad=True)
    network(x)[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    return x.grad.abs().numpy()


@pytest.mark.parametrize("metric", [MPRT(), EfficientMPRT()], ids=["mprt", "emprt"])
def test_batched_row_values_equal_the_metric_on_each_row_alone(metric: Metric) -> None:
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    inputs = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    targets = np.array([0, 1, 2, 0, 1, 2, 0])
    again = Reexplainer(network, _gradient)
    evidence = Evidence(
        attributions=again(inputs, targets), inputs=inputs, targets=targets, reexplain=again
    )
    batched = metric.row_values(evidence)
    assert np.allclose(batched, Metric.row_values(metric, evidence), rtol=1e-6, atol=1e-9)
    assert np.nanmean(batched) == pytest.approx(metric.compute(evidence).value, rel=1e-9)


def test_a_perturbed_network_multiplies_every_parameter_by_seeded_noise() -> None:
    network = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    before = [p.detach().clone() for p in network.parameters()]
    one, same, other = (perturbed_network(network, 0.5, s) for s in (1, 1, 2))
    generator = torch.Generator().manual_seed(1)
    for original, changed, again, different in zip(
        network.parameters(), one.parameters(), same.parameters(), other.parameters(), strict=True
    ):
        noise = torch.randn(original.shape, generator=generator, dtype=torch.float64)
        expected = original.detach() * (1 + 0.5 * noise).float()
        assert torch.equal(changed, expected) and torch.equal(changed, again)
        assert not torch.equal(changed, different)
    kept = zip(before, network.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in kept)  # the explained network is left as it was


META_SUITE = suite(
    "meta",
    seeds=[0, 1],
    metrics=["accuracy", "deletion_auc", "suppressor_share",
             {"name": "sample_plugins:ConstantMetric", "id": "constant"},
             {"name": "sample_plugins:NoiseMetric", "id": "noise"}],
    execution={"explain_rows": 12, "threads": 1},
    meta_evaluation={"metrics": ["constant", "noise", "deletion_auc", "suppressor_share"],
                     "perturbations": 2},
    datasets=[("synthetic_tabular",
               {"n_samples": 400, "n_features": 6, "n_informative": 3, "class_sep": 2.0}, "syn")],
    models=[("mlp", {"hidden": [16], "epochs": 10})],
    explainers=["saliency", ("integrated_gradients", {"n_steps": 8}), "input_x_gradient",
                "oracle"],
)  # fmt: skip


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import sys

    from tests.conftest import PLUGINS

    sys.path.insert(0, str(PLUGINS))
    folder = tmp_path_factory.mktemp("meta")
    (folder / "meta.toml").write_text(META_SUITE)
    summary = run_suite(folder / "meta.toml", folder / "out", cache_dir=folder / "cache")
    assert not summary.any_failed
    return folder, summary.run_id


def test_a_run_stores_nr_ar_mc_per_model_for_the_post_hoc_cells(meta_run) -> None:
    folder, run_id = meta_run
    results = load_results(folder / "out", run_id)
    meta = results[results["metric_kind"] == "meta"]
    assert set(meta["explainer"]) == {"saliency", "integrated_gradients", "input_x_gradient"}
    # explainers × seeds × metrics × (nr, ar, mc); suppressor_share is skipped (no suppressors)
    assert len(meta) == 3 * 2 * 3 * 3 and not meta["metric"].str.startswith("supp").any()
    constant = meta[meta["metric"].str.startswith("constant:")].set_index(["seed", "metric"])
    for seed in (0, 1):
        assert constant.loc[(seed, "constant:nr"), "value"].eq(1.0).all()
        assert constant.loc[(seed, "constant:ar"), "value"].eq(0.0).all()
    conventions = meta["conventions"].str.contains('"perturbations": 2').all()
    assert conventions and meta["conventions"].str.contains("model_adversary").all()
    # every explainer of one model met the same perturbations
    unchanged = load_arrays(folder / "out", "constant.meta_unchanged", run_id)
    for seed in (0, 1):
        same = [a for cell, a in unchanged.items() if cell.endswith(f"seed={seed}")]
        assert len(same) == 3 and all(np.array_equal(same[0], a) for a in same)
    checks = {c.metric: c for c in meta_checks(results)}
    assert checks["constant"].flagged("ar") and not checks["constant"].flagged("nr")
    assert checks["noise"].flagged("nr")
    # scores of metrics, not of explainers: never in a leaderboard
    assert not summarise(results)["metric"].str.contains(":").any()


def test_the_report_card_shows_nr_ar_mc_and_the_flags(meta_run) -> None:
    folder, run_id = meta_run
    page = write_report(folder / "out", run_id, folder / "report").read_text()
    card = page[page.index("Metric report card") :]
    assert "<th>NR</th><th>AR</th><th>MC</th>" in card
    assert "not reactive to adversaries: AR 0.000 is not clearly above chance" in card
    assert "not resilient to noise" in card and re.search(r"\+ meta [0-9.e-]+ s</td>", card)


def test_a_rescoring_recomputes_the_meta_scores(meta_run) -> None:
    folder, run_id = meta_run
    summary = rescore_run(
        folder / "out", run_id, metric_ids=["constant"], cache_dir=folder / "cache"
    )
    before = load_results(folder / "out", run_id)
    after = load_results(folder / "out", summary.run_id)
    for frame in (before, after):
        assert frame.query("metric == 'constant:ar'")["value"].eq(0.0).all()
    kept = after.query("metric == 'deletion_auc:mc'")["value"].to_numpy()
    assert np.array_equal(kept, before.query("metric == 'deletion_auc:mc'")["value"])


META_LIST = 'metrics = ["constant", "noise", "deletion_auc", "suppressor_share"]'


@pytest.mark.parametrize(
    ("listed", "message"),
    [
        ('metrics = ["constant", "nosie"]', "meta_evaluation.metrics[1]: 'nosie' is not a "
         "metric id of this suite; did you mean 'noise'?"),
        ('metrics = ["accuracy"]', "meta_evaluation.metrics[0]: 'accuracy' does not score "
         "the explained rows' maps one by one"),
        (META_LIST + '\nexplainers = ["saliency", "oracle"]', "meta_evaluation.explainers[1]: "
         "'oracle' is not a post-hoc explainer id of this suite"),
    ],
)  # fmt: skip
def test_meta_evaluating_an_unknown_or_global_metric_or_a_control_is_refused(
    tmp_path: Path, plugins_on_path: None, listed: str, message: str
) -> None:
    (tmp_path / "bad.toml").write_text(META_SUITE.replace(META_LIST, listed))
    assert_user_error(cli("validate", str(tmp_path / "bad.toml")), message)


def test_the_cost_estimate_counts_the_meta_evaluations_explaining_again(
    plugins_on_path: None,
) -> None:
    """Each meta-evaluated cell explains its rows 1 + 4 × perturbations times."""
    from harness.runner.plan import plan
    from harness.runner.plan_cost import plan_cost
    from harness.suite import parse_suite

    with_meta = parse_suite(META_SUITE)
    without = parse_suite(META_SUITE.replace(META_LIST, "metrics = []"))
    more, less = (plan_cost(s, plan(s)).model_calls for s in (with_meta, without))
    assert more["integrated_gradients"] == 9 * less["integrated_gradients"] > 0
    assert more.get("oracle", 0) == less.get("oracle", 0)  # controls are not meta-evaluated


def test_the_figure_has_a_panel_per_family_each_with_its_own_scale(meta_run) -> None:
    """Panels keep their own y tick labels (a shared y axis hid them once the panels were
    reflowed into one column at 3.5 in)."""
    from harness.report.figures import meta_consistency_figure

    folder, run_id = meta_run
    figure = meta_consistency_figure(load_results(folder / "out", run_id), "syn", "mlp")
    assert figure is not None
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["faithfulness", "other"]  # deletion_auc; the two plugin metrics
    for axis in figure.axes:
        assert axis.get_ylim() == (-0.02, 1.02)
        assert all(tick.label1.get_visible() for tick in axis.yaxis.get_major_ticks())
