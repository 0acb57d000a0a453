"""Cost per row of each explainer, and the wrapper's overhead over a direct library call.

Run: ``python benchmarks/explainer_overhead.py [--repeats 5]``. Both calls do the same
job — construct the explainer (background summaries included), explain the same numpy
rows with the same settings, and deliver a numpy map (channels pooled by Σ|a| for
images) — and they alternate, so machine noise hits both sides. The overhead is computed from
the fastest repeat of each (the least disturbed by other processes, as ``timeit``
advises); medians are printed beside it.
Standard small models: the quick suite's MLP on synthetic_tabular (16 features, 5
relevant) and small_cnn on 32×32 digits.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

warnings.filterwarnings("ignore")

import shap  # noqa: E402
from captum.attr import (  # noqa: E402
    DeepLift,
    FeatureAblation,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Saliency,
)
from lime.lime_image import LimeImageExplainer  # noqa: E402
from lime.lime_tabular import LimeTabularExplainer  # noqa: E402
from lime.wrappers.scikit_image import SegmentationAlgorithm  # noqa: E402

from harness.datasets import dataset_registry  # noqa: E402
from harness.explainers import ExplainContext, explainer_registry  # noqa: E402
from harness.explainers.captum_methods import patch_mask  # noqa: E402
from harness.explainers.lime_methods import no_progress_bars  # noqa: E402
from harness.explainers.shap_methods import numpy_global_seed, sample_rows  # noqa: E402
from harness.models import model_registry  # noqa: E402

SEED = 0
CPU = torch.device("cpu")


def direct_calls(model, dataset, inputs, targets) -> dict[str, tuple[dict, Callable[[], object]]]:
    """(wrapper params, direct library call) per explainer, with identical settings."""
    module, image = model.module, dataset.modality == "image"

    def x() -> torch.Tensor:
        return torch.as_tensor(inputs)

    def t() -> torch.Tensor:
        return torch.as_tensor(targets)

    def as_map(attributions: torch.Tensor) -> np.ndarray:
        values = attributions.detach().numpy()
        return np.abs(values).sum(axis=1) if image else values

    calls: dict[str, tuple[dict, Callable[[], object]]] = {
        "integrated_gradients": ({}, lambda: as_map(IntegratedGradients(module).attribute(
            x(), baselines=0.0, target=t(), n_steps=50))),
        "saliency": ({}, lambda: as_map(Saliency(module).attribute(x(), target=t(), abs=True))),
        "input_x_gradient": ({}, lambda: as_map(InputXGradient(module).attribute(
            x(), target=t()))),
        "deeplift": ({}, lambda: as_map(DeepLift(module).attribute(
            x(), target=t(), baselines=0.0))),
        "guided_backprop": ({}, lambda: as_map(GuidedBackprop(module).attribute(
            x(), target=t()))),
        "feature_ablation": ({}, lambda: as_map(FeatureAblation(module).attribute(
            x(), target=t(), baselines=0.0, perturbations_per_eval=16,
            feature_mask=patch_mask(inputs.shape[2:], 4) if image else None))),
        "shap_gradient": ({"nsamples": 200}, lambda: shap.GradientExplainer(
            module, torch.tensor(sample_rows(dataset.x_train, 50, SEED))).shap_values(
            x(), nsamples=200, rseed=SEED, ranked_outputs=1)),
        "shap_deep": ({}, lambda: shap.DeepExplainer(
            module, torch.tensor(sample_rows(dataset.x_train, 50, SEED))).shap_values(
            x(), ranked_outputs=1, check_additivity=False)),
    }  # fmt: skip
    if image:
        segmenter = SegmentationAlgorithm(
            "quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=SEED
        )

        def lime_image() -> object:
            explainer = LimeImageExplainer(random_state=SEED)
            with no_progress_bars():  # as the wrapper: lime's tqdm bars are not timed
                return [
                    explainer.explain_instance(
                        picture[0].astype(np.float64),
                        lambda b: model.predict_proba(np.transpose(b, (0, 3, 1, 2))[:, :1]),
                        labels=(int(target),), top_labels=None, num_samples=1000, batch_size=256,
                        segmentation_fn=segmenter, random_seed=SEED,
                    )
                    for picture, target in zip(inputs, targets, strict=True)
                ]  # fmt: skip

        def grad_cam() -> object:
            maps = LayerGradCam(module, module.features).attribute(
                x(), target=t(), relu_attributions=True
            )
            upsampled = LayerAttribution.interpolate(maps, tuple(inputs.shape[2:]), "bilinear")
            return upsampled[:, 0].detach().numpy()

        calls["lime_image"] = ({}, lime_image)
        calls["grad_cam"] = ({}, grad_cam)
    else:

        def kernel() -> object:
            explainer = shap.KernelExplainer(model.predict_proba, shap.kmeans(dataset.x_train, 50))
            with numpy_global_seed(SEED):
                return explainer.shap_values(inputs, nsamples="auto", silent=True)

        def permutation() -> object:
            background = sample_rows(dataset.x_train, 100, SEED)
            masker = shap.maskers.Independent(background, max_samples=100)
            with numpy_global_seed(SEED):
                return shap.PermutationExplainer(model.predict_proba, masker, seed=SEED)(
                    inputs, max_evals=500, silent=True
                )

        def lime_tabular() -> object:
            explainer = LimeTabularExplainer(
                dataset.x_train, mode="classification", feature_names=dataset.feature_names,
                random_state=SEED,
            )  # fmt: skip
            return [
                explainer.explain_instance(
                    row, model.predict_proba, labels=(int(target),),
                    num_features=dataset.n_features, num_samples=5000,
                )
                for row, target in zip(inputs, targets, strict=True)
            ]  # fmt: skip

        calls["shap_kernel"] = ({}, kernel)
        calls["shap_permutation"] = ({}, permutation)
        calls["lime_tabular"] = ({}, lime_tabular)
    return calls


def measure(
    name, params, direct, model, dataset, inputs, targets, repeats
) -> tuple[list[float], list[float]]:
    """Seconds per row of each repeat: (direct calls, wrapper calls)."""
    wrapper = explainer_registry.get(name)(**params)
    context = ExplainContext(dataset, SEED, np.arange(len(inputs)))
    ours = lambda: wrapper.explain(model, inputs, targets, context)  # noqa: E731
    ours(), direct()  # warm-up (numba compilation, lazy imports)
    wrapped, plain = [], []
    for _ in range(repeats):
        for call, times in ((ours, wrapped), (direct, plain)):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    return [s / len(inputs) for s in plain], [s / len(inputs) for s in wrapped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tabular-rows", type=int, default=100)
    parser.add_argument("--image-rows", type=int, default=16)
    parser.add_argument("--only", nargs="*", help="explainers to measure (default: all)")
    args = parser.parse_args()

    tabular = dataset_registry.get("synthetic_tabular")(n_samples=5000).load(SEED)
    mlp = model_registry.get("mlp")(epochs=20).fit(tabular, SEED, CPU)
    digits = dataset_registry.get("digits")(size=32).load(SEED)
    cnn = model_registry.get("small_cnn")().fit(digits, SEED, CPU)
    print(f"torch threads {torch.get_num_threads()}; mlp accuracy "
          f"{np.mean(mlp.predict(tabular.x_test) == tabular.y_test):.3f}; small_cnn accuracy "
          f"{np.mean(cnn.predict(digits.x_test) == digits.y_test):.3f}")  # fmt: skip
    print(
        f"{'explainer':22} {'modality':8} {'rows':>4} {'direct ms/row':>22} "
        f"{'wrapper ms/row':>22} {'overhead':>9}"
    )
    columns = f"{'min':>10} {'median':>11} {'min':>10} {'median':>11} {'(min)':>9}"
    print(f"{'':36} {columns}")
    for model, dataset, rows in ((mlp, tabular, args.tabular_rows), (cnn, digits, args.image_rows)):
        inputs = dataset.x_test[:rows]
        targets = model.predict(inputs)
        for name, (params, direct) in direct_calls(model, dataset, inputs, targets).items():
            if args.only and name not in args.only:
                continue
            plain, wrapped = measure(
                name, params, direct, model, dataset, inputs, targets, args.repeats
            )
            overhead = min(wrapped) / min(plain) - 1
            print(f"{name:22} {dataset.modality:8} {rows:>4} {min(plain) * 1e3:>10.3f} "
                  f"{statistics.median(plain) * 1e3:>11.3f} {min(wrapped) * 1e3:>10.3f} "
                  f"{statistics.median(wrapped) * 1e3:>11.3f} {overhead:>+9.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
