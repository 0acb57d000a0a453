"""The generic registry: decorators, entry points, "module:Class", errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import HarnessError, UnknownNameError
from harness.explainers import Explainer, explainer_registry
from harness.registry import Registry


def make_registry() -> Registry[type[Explainer]]:
    return Registry("explainer", Explainer, "xai_harness.test_group_unused")


def test_decorator_registers_and_names_the_class() -> None:
    registry = make_registry()

    @registry.register("alpha")
    class Alpha(Explainer):
        """First line.

        More detail."""

    assert registry.get("alpha") is Alpha
    assert Alpha.name == "alpha"
    assert Alpha.summary() == "First line."
    assert registry.names() == ["alpha"]
    assert "alpha" in registry and "beta" not in registry


def test_duplicate_name_fails() -> None:
    registry = make_registry()
    registry.register("alpha")(type("A", (Explainer,), {}))
    with pytest.raises(HarnessError, match="registered twice"):
        registry.register("alpha")(type("B", (Explainer,), {}))


def test_wrong_base_class_fails() -> None:
    registry = make_registry()
    with pytest.raises(HarnessError, match="not a subclass"):
        registry.register("odd")(int)  # type: ignore[arg-type]


def test_unknown_name_lists_known_names_and_closest_match() -> None:
    with pytest.raises(UnknownNameError) as caught:
        explainer_registry.get("integrated_gradient")
    message = str(caught.value)
    assert "did you mean 'integrated_gradients'?" in message
    assert "oracle" in message and "random" in message
    assert "\n" not in message


def test_module_colon_class_is_imported(plugins_on_path: None) -> None:
    cls = explainer_registry.get("sample_plugins:FeatureIndexExplainer")
    assert cls.__name__ == "FeatureIndexExplainer"
    assert cls.name == "sample_plugins:FeatureIndexExplainer"


def test_module_colon_class_errors_are_clear(plugins_on_path: None) -> None:
    with pytest.raises(UnknownNameError, match="cannot import module 'no_such_module'"):
        explainer_registry.get("no_such_module:Thing")
    with pytest.raises(UnknownNameError, match="did you mean 'NaNExplainer'"):
        explainer_registry.get("sample_plugins:NanExplainer")
    with pytest.raises(HarnessError, match="not a subclass"):
        explainer_registry.get("sample_plugins:BlobsWithoutTruth")


def _install_distribution(site: Path, entry_points: str) -> None:
    """A real (tiny) installed distribution: a module plus a .dist-info with entry points."""
    (site / "tiny_xai_plugin.py").write_text(
        textwrap.dedent(
            '''
            import numpy as np
            from harness.explainers import Explainer, Explanation

            class Ones(Explainer):
                """Attributes 1 to every feature."""

                def explain(self, model, inputs, targets, context):
                    return Explanation(local=np.ones(inputs.shape))
            '''
        )
    )
    info = site / "tiny_xai_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-xai-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_entry_point_plugin_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_distribution(tmp_path, "[xai_harness.explainers]\nones = tiny_xai_plugin:Ones\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "ones" in explainer_registry.names()
    cls = explainer_registry.get("ones")
    assert cls.__name__ == "Ones" and cls.name == "ones"


def test_entry_point_colliding_with_a_builtin_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_distribution(tmp_path, "[xai_harness.explainers]\noracle = tiny_xai_plugin:Ones\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HarnessError, match="'oracle' is taken by a built-in"):
        explainer_registry.names()
