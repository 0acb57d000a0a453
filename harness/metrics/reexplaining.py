"""How a metric asks for a new explanation: the cell's explainer as a function.

Sanity checks (a randomised model, another class) and robustness (perturbed inputs) need
the explainer again on something other than what the cell explained. Metrics never
import explainers or models; the runner hands them a :class:`Reexplainer` instead — the
explained model's torch network and a function ``(network, inputs, targets, positions) →
maps`` that runs the cell's explainer, with the cell's seed and settings, on ``network``
(the explained one or a changed copy). Maps come back as the cell's own explanation does
(``Evidence.attributions``: rows × features, or images × height × width).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from harness.batching import rows_per_batch

#: (network, inputs, targets, positions) → local maps; ``positions`` index the explained
#: rows of the evidence (controls read those rows' ground truth).
ExplainFunction = Callable[[nn.Module, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Reexplainer:
    """The cell's explainer as a function of (network, inputs, targets), see the module.

    ``network`` maps raw inputs to class logits (log-probabilities for tree ensembles);
    a metric that changes it works on a copy (``copy.deepcopy``), never on it.
    """

    network: nn.Module
    function: ExplainFunction

    def __call__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        positions: np.ndarray | None = None,
        network: nn.Module | None = None,
    ) -> np.ndarray:
        """Maps of ``inputs`` (rows standing for the explained rows at ``positions``,
        default 0 … rows − 1) for classes ``targets``, explained on ``network`` (default:
        the explained one); a batch of at most :func:`rows_per_batch` rows at a time."""
        where = np.arange(len(inputs)) if positions is None else np.asarray(positions)
        chosen = self.network if network is None else network
        size = rows_per_batch(tuple(inputs.shape[1:]))
        maps = [
            self.function(chosen, inputs[i : i + size], targets[i : i + size], where[i : i + size])
            for i in range(0, len(inputs), size)
        ]
        return np.concatenate(maps)

    def at(self, positions: list[int] | np.ndarray) -> Reexplainer:
        """This explainer for the explained rows at ``positions`` alone: its position
        0, 1, … stands for ``positions[0]``, ``positions[1]``, …"""
        chosen = np.asarray(positions)
        function = self.function
        return Reexplainer(
            self.network,
            lambda net, inputs, targets, where: function(net, inputs, targets, chosen[where]),
        )

    def on(self, network: nn.Module) -> Reexplainer:
        """This explainer on another network (e.g. a perturbed copy) by default."""
        return Reexplainer(network, self.function)
