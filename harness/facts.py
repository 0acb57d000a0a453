"""The facts every stored row carries about its metric and explainer.

Reports, figures, regressions and claims read these from the store, never from a plugin
registry, so a stored run renders the same whether or not its plugins are installed.
"""

from __future__ import annotations

from typing import Literal

#: What a metric measures: the explanation, the model, the cost — or it is a reference
#: (a baseline to read other scores against, never ranked).
MetricKind = Literal["explanation", "model", "cost", "reference"]

#: An explainer is post-hoc, by-design (it builds the model it explains) or a control
#: (a reference explanation: oracle, inverted, random, constant, centre).
ExplainerRole = Literal["post_hoc", "by_design", "control"]
