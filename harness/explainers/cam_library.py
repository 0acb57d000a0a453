"""Class-activation-map baselines from the ``grad-cam`` package (``pytorch_grad_cam``).

Grad-CAM (``grad_cam_library``), Score-CAM, Layer-CAM, Grad-CAM++, XGrad-CAM, HiRes-CAM,
Eigen-CAM and Ablation-CAM, each the library's own class — nothing is re-implemented here.
On CNNs they use the same feature map as ``grad_cam`` (the recipe's ``cam_layer``, or
``params.layer``); on vision transformers (the ``vit`` recipe) the last block's first
LayerNorm, as the library's documentation does for ViTs, with the token sequence reshaped
to the token grid for them — the prefix (class) tokens dropped, the patch tokens laid out
row by row, channels first (:func:`token_reshape`; the grid from the model's patch
embedding): no ``reshape_transform`` to write. They run on batches of ``batch_size``
images.

Conventions (``output``):

* ``scaled`` (default): what the library returns — the map after a ReLU, min–max scaled
  to [0, 1] per image and resized to the input with OpenCV (bilinear). Unsigned.
* ``raw``: the library's map before its ReLU and scaling (``get_cam_image`` on the
  layer's activations and gradients), upsampled to the input size by ``interpolation``
  like ``grad_cam``. Signed; Eigen-CAM's sign is arbitrary (a principal component).

None of these methods draws random numbers; the cell's seed is set anyway (forked, so
the global generator is untouched). The library's own progress bars are silenced.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Modality
from harness.explainers.base import ExplainContext, Explainer, Explanation, explainer_registry
from harness.explainers.captum_methods import cam_layer
from harness.models.base import TrainedModel
from harness.models.vision_transformer import token_reshape, vision_transformer


class CamLibraryParams(Params):
    layer: str | None = Field(
        None, description="dotted module name of the feature map (default: the recipe's)"
    )
    output: Literal["scaled", "raw"] = Field(
        "scaled",
        description="the library's [0, 1] min-max scaled map after ReLU, or its raw "
        "(signed) map before them",
    )
    interpolation: Literal["bilinear", "nearest", "bicubic"] = Field(
        "bilinear", description="output 'raw': upsampling of the map to the input size"
    )
    batch_size: int = Field(16, ge=1, le=100_000, description="images per library call")


class _CamLibraryExplainer(Explainer):
    """One ``pytorch_grad_cam`` class on the recipe's feature map."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    needs_gradients: ClassVar[bool] = True
    requires_any_traits: ClassVar[frozenset[str]] = frozenset({"convolutional", "tokens"})
    #: the class's name in ``pytorch_grad_cam``
    library_class: ClassVar[str]
    params: CamLibraryParams

    def constructor_kwargs(self) -> dict[str, Any]:
        return {}

    def configure(self, cam: Any) -> None:
        """Set library attributes after construction (e.g. Score-CAM's batch size)."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        layer, reshape = self._layer(model)
        size = self.params.batch_size
        maps = []
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stderr(io.StringIO()):
            torch.manual_seed(context.seed)
            cam = getattr(pytorch_grad_cam, self.library_class)(
                model=model.module,
                target_layers=[layer],
                reshape_transform=reshape,
                **self.constructor_kwargs(),
            )
            self.configure(cam)
            try:
                for start in range(0, len(inputs), size):
                    x = torch.as_tensor(inputs[start : start + size], device=model.device)
                    wanted = [ClassifierOutputTarget(int(t)) for t in targets[start : start + size]]
                    maps.append(self.maps(cam, layer, x, wanted))
            finally:
                cam.activations_and_grads.release()
        return Explanation(
            local=np.concatenate(maps).astype(np.float32), signed=self.params.output == "raw"
        )

    def _layer(self, model: TrainedModel) -> tuple[torch.nn.Module, Callable[..., Any] | None]:
        """The feature map and, for a vision transformer, the tokens' reshape to the grid."""
        try:
            vit = vision_transformer(model.module)
        except ValueError:
            return cam_layer(model, self.params.layer, self.name), None
        blocks: Any = vit.blocks
        chosen = (
            blocks[-1].norm1
            if self.params.layer is None
            else model.module.get_submodule(self.params.layer)
        )
        return chosen, token_reshape(vit)

    def maps(self, cam: Any, layer: torch.nn.Module, x: torch.Tensor, wanted: list[Any]):
        """(images, H, W) maps of one batch, in the chosen ``output`` convention."""
        if self.params.output == "scaled":
            return cam(input_tensor=x, targets=wanted)
        # the library's own steps up to its ReLU and scaling (BaseCAM.forward)
        outputs = cam.activations_and_grads(x)
        if cam.uses_gradients:
            cam.model.zero_grad()
            sum(target(output) for target, output in zip(wanted, outputs, strict=True)).backward()
        activations = cam.activations_and_grads.activations[0].cpu().numpy()
        gradients = (
            cam.activations_and_grads.gradients[0].cpu().numpy()
            if cam.activations_and_grads.gradients
            else None
        )
        raw = cam.get_cam_image(x, layer, wanted, activations, gradients, False)
        from captum.attr import LayerAttribution

        upsampled = LayerAttribution.interpolate(
            torch.as_tensor(np.asarray(raw, dtype=np.float32))[:, None],
            tuple(x.shape[2:]),
            interpolate_mode=self.params.interpolation,
        )
        return upsampled[:, 0].numpy()


@explainer_registry.register("grad_cam_library")
class GradCamLibrary(_CamLibraryExplainer):
    """Grad-CAM (Selvaraju et al. 2017), ``pytorch_grad_cam.GradCAM`` (CNNs and ViTs)."""

    library_class = "GradCAM"


@explainer_registry.register("grad_cam_plus_plus")
class GradCamPlusPlus(_CamLibraryExplainer):
    """Grad-CAM++ (Chattopadhay et al. 2018), ``pytorch_grad_cam.GradCAMPlusPlus``."""

    library_class = "GradCAMPlusPlus"


@explainer_registry.register("xgrad_cam")
class XGradCam(_CamLibraryExplainer):
    """XGrad-CAM (Fu et al. 2020), ``pytorch_grad_cam.XGradCAM``."""

    library_class = "XGradCAM"


@explainer_registry.register("hires_cam")
class HiResCam(_CamLibraryExplainer):
    """HiRes-CAM (Draelos & Carin 2020): gradient × activation summed over channels,
    ``pytorch_grad_cam.HiResCAM``."""

    library_class = "HiResCAM"


@explainer_registry.register("layer_cam")
class LayerCam(_CamLibraryExplainer):
    """Layer-CAM (Jiang et al. 2021): ReLU(gradient) × activation, ``pytorch_grad_cam.LayerCAM``."""

    library_class = "LayerCAM"


@explainer_registry.register("eigen_cam")
class EigenCam(_CamLibraryExplainer):
    """Eigen-CAM (Muhammad & Yeasin 2020): first principal component of the activations,
    ``pytorch_grad_cam.EigenCAM``; class-agnostic (the target is not used)."""

    needs_gradients: ClassVar[bool] = False
    library_class = "EigenCAM"


class ScoreCamParams(CamLibraryParams):
    masks_per_batch: int = Field(
        64,
        ge=1,
        le=100_000,
        description="masked inputs per forward pass (the library's "
        "batch_size attribute; its default is 16)",
    )


@explainer_registry.register("score_cam")
class ScoreCam(_CamLibraryExplainer):
    """Score-CAM (Wang et al. 2020): channel weights from the class score of the input
    masked by each upsampled activation, ``pytorch_grad_cam.ScoreCAM``; one forward
    pass per channel and image (in batches of ``masks_per_batch``)."""

    needs_gradients: ClassVar[bool] = False
    library_class = "ScoreCAM"
    params: ScoreCamParams

    def configure(self, cam: Any) -> None:
        cam.batch_size = self.params.masks_per_batch

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """A forward pass per channel of the layer (64 assumed: the layer is not known
        before the model is built)."""
        return 65.0


class AblationCamParams(CamLibraryParams):
    ablations_per_batch: int = Field(
        32,
        ge=1,
        le=100_000,
        description="ablated copies per forward pass (the library's batch_size)",
    )


@explainer_registry.register("ablation_cam")
class AblationCam(_CamLibraryExplainer):
    """Ablation-CAM (Desai & Ramaswamy 2020): channel weights from the drop of the class
    score when each channel is zeroed, ``pytorch_grad_cam.AblationCAM``."""

    library_class = "AblationCAM"
    params: AblationCamParams

    def constructor_kwargs(self) -> dict[str, Any]:
        return {"batch_size": self.params.ablations_per_batch}

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """A forward pass per channel of the layer (64 assumed, as Score-CAM)."""
        return 65.0
