"""Figures rendered from a stored run only (PNG and PDF; the run id in their metadata).

- ``sweep``: accuracy gain of by-design models and Spearman with the ground truth against
  the number of irrelevant features (synthetic datasets that differ in it);
- ``importance``: each explainer's global importance per feature, relevant features marked;
- ``trajectory``: ScoresActivation weights per epoch, relevant features in colour;
- ``gallery``: images × explainers, each map with the ground-truth mask's contour;
- ``accuracy_localisation``: each localisation metric against the accuracy of the model
  the explainer ran on (by-design methods change the model), ± sd over seeds both ways;
- ``faithfulness``: mean deletion and insertion curves per explainer, with the
  random-order reference;
- ``randomisation``: MPRT similarity per randomised layer (top first) per explainer —
  the classic sanity-check plot (Adebayo et al. 2018); controls dotted;
- ``metric``: one metric's mean and 95 % t-interval per model × explainer, per dataset;
- ``runtime``: explanation time per row on a log scale.

By default every kind is drawn where it applies (``metric`` once per explanation metric);
a suite's ``[[figures]]`` tables add figures with their own name and filters.

Colours are fixed per explainer across every figure of a run.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules:  # files only; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text

from harness import artifacts
from harness.errors import HarnessError
from harness.output_paths import writable_folder
from harness.statistics import t_interval
from harness.store import ResultsStore
from harness.suite import FigureKind


def controls(results: pd.DataFrame) -> set[str]:
    """Ids of the explainers the store records as controls (drawn hollow or dotted)."""
    return set(results.loc[results["explainer_role"] == "control", "explainer"])


def ok_rows(results: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """The score rows of the ok cells of one dataset × model."""
    chosen = (results["dataset"] == dataset) & (results["model"] == model)
    return results[chosen & (results["status"] == "ok")]


def explainer_colours(explainers: list[str]) -> dict[str, Any]:
    """A stable colour per explainer (sorted names → tab10/tab20 colours)."""
    palette = plt.get_cmap("tab10" if len(explainers) <= 10 else "tab20")
    return {name: palette(i % palette.N) for i, name in enumerate(sorted(explainers))}


def feature_counts(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(relevant, irrelevant) features per dataset id, for datasets whose stored
    parameters say them."""
    counts = {}
    for entry in config["datasets"]:
        params = entry["params"]
        if {"n_features", "n_informative"} <= params.keys():
            relevant = params["n_informative"] + params.get("n_redundant", 0)
            counts[entry["id"]] = (relevant, params["n_features"] - relevant)
    labels = display_labels(config)["dataset"]
    return counts | {labels[d]: counts[d] for d in counts if d in labels}


#: What a file stem is made of (no separator, no leading dot).
_STEM = re.compile(r"[\w=+,-][\w.=+,-]{0,170}", re.ASCII)
#: Names kept as they are in file names: lower-case ASCII letters, digits, ``_.=+,``.
_PLAIN_NAME = re.compile(r"[a-z0-9_=+,][a-z0-9_.=+,]{0,149}")


def value_range(block: pd.DataFrame) -> tuple[float, float] | None:
    """The values the metric of ``block``'s rows can take, as stored with its scores;
    None when unbounded or stored before ranges were kept."""
    if "range_low" not in block or block["range_low"].isna().all():
        return None
    return float(block["range_low"].dropna().iloc[0]), float(block["range_high"].dropna().iloc[0])


def within_range(axis: Axes, block: pd.DataFrame, which: str = "y") -> None:
    """Keep an axis inside the values its metric can take (plus 3 % of that range), after
    autoscaling: an interval or a margin never suggests an accuracy above 1."""
    bounds = value_range(block)
    if bounds is None:
        return
    low, high = bounds
    margin = 0.03 * (high - low)
    get, put = (axis.get_ylim, axis.set_ylim) if which == "y" else (axis.get_xlim, axis.set_xlim)
    shown_low, shown_high = get()
    put(max(shown_low, low - margin), min(shown_high, high + margin))


def display_labels(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Column (dataset, model, explainer) → entry id → its display ``label`` (suite
    entries' ``label = "Grad-CAM"``; a swept entry's label is followed by its swept
    values, ``Grad-CAM[relu=False]``). Ids without a label are absent."""
    labels: dict[str, dict[str, str]] = {}
    for section, column in (
        ("datasets", "dataset"),
        ("models", "model"),
        ("explainers", "explainer"),
    ):
        mapping = labels.setdefault(column, {})
        for entry in config.get(section, []):
            if not entry.get("label"):
                continue
            base = entry.get("sweep", {}).get("base", entry["id"])
            suffix = entry["id"][len(base) :] if entry["id"].startswith(base) else ""
            mapping[entry["id"]] = entry["label"] + suffix
    return labels


def relabelled(results: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """``results`` with dataset, model and explainer ids replaced by display labels."""
    for column, mapping in display_labels(config).items():
        if mapping:
            results = results.assign(**{column: results[column].replace(mapping)})
    return results


#: Body text size (points) of a figure drawn at most this wide (inches): a paper column.
NARROW_WIDTH, NARROW_FONT = 4.0, 8.0
#: Matplotlib's body text size, against which a figure's other text sizes are scaled.
BASE_FONT = 10.0


#: The narrowest panel (inches) a figure of a given width is reflowed to.
PANEL_WIDTH = 2.3


def styled(drawing: Callable[[], Figure | None], spec: dict[str, Any]) -> Figure | None:
    """Draw, then apply the spec's paper options: ``font_size`` (every text scaled by
    font_size / 10, so titles stay larger than tick labels; 8 pt by default at a width of
    at most 4 in), ``width``/``height`` in inches — panels reflowed into as many columns
    as fit (:data:`PANEL_WIDTH` each), legends outside the panels moved below them,
    titles wrapped, the height following the rows when not given — ``sharey`` (one
    y-range for every plotted panel) and ``dpi`` (150 for the default figures)."""
    figure = drawing()
    if figure is None:
        return None
    width, height = spec.get("width"), spec.get("height")
    size = spec.get("font_size") or (NARROW_FONT if width and width <= NARROW_WIDTH else None)
    panels = [a for a in figure.axes if a.get_visible() and a.has_data()]
    if spec.get("sharey") and panels:
        lows, highs = zip(*(a.get_ylim() for a in panels), strict=True)
        for axis in panels:
            if not axis.images:
                axis.set_ylim(min(lows), max(highs))
    if size:
        for text in figure.findobj(Text):
            text.set_fontsize(float(text.get_fontsize()) * size / BASE_FONT)
    if width:
        height = height or _reflowed(figure, panels, width)
    elif height:
        shown_w, shown_h = figure.get_size_inches()
        width = shown_w * height / shown_h
    if width and height:
        figure.set_size_inches(width, height)
    if width or size:  # constrained layout: room for titles, rotated labels, colour bars
        figure.set_layout_engine("constrained")
    figure.set_dpi(spec.get("dpi") or 150)
    return figure


def _reflowed(figure: Figure, panels: list[Axes], width: float) -> float:
    """Lay ``figure``'s plotted panels out ``width`` inches wide (image grids keep their
    layout), move legends from beside the panels to below them and wrap the title;
    returns the height (inches) that keeps each panel's shape."""
    shown_w, shown_h = figure.get_size_inches()
    place = panels[0].get_subplotspec() if panels else None
    if any(a.images for a in panels) or len(panels) < 2 or place is None:
        columns = rows = 1
        panel_w, panel_h = shown_w, shown_h
    else:
        old_rows, old_columns = place.get_gridspec().get_geometry()
        panel_w, panel_h = shown_w / old_columns, shown_h / old_rows
        columns = max(1, min(len(panels), int(width // PANEL_WIDTH)))
        rows = -(-len(panels) // columns)
        layout = figure.add_gridspec(rows, columns)
        for index, axis in enumerate(panels):
            axis.set_subplotspec(layout[index // columns, index % columns])
    for legend in list(figure.legends):  # beside the panels → below the figure
        _below_figure(figure, legend, max(1, int(width // 1.6)))
    titles = [(getattr(figure, "_suptitle", None), width)]
    titles += [(axis.title, width / columns) for axis in panels]
    titles += [(axis.xaxis.label, width / columns) for axis in panels]
    for text, room in titles:  # wrapped to the width they have
        if text is not None and text.get_text() and text.get_rotation() == 0:
            characters = int(room * 72 / (0.55 * float(text.get_fontsize())))
            lines = text.get_text().splitlines()
            text.set_text(
                "\n".join(w for line in lines for w in textwrap.wrap(line, max(16, characters)))
            )
    for axis in panels:  # beside a panel → below it (below the figure when it is alone)
        beside = axis.get_legend()
        if beside is None or beside.get_bbox_to_anchor().x0 <= axis.bbox.x1 - 1:
            continue
        if len(panels) == 1:
            _below_figure(figure, beside, max(1, int(width // 1.7)))
            continue
        handles, labels, size = _legend_parts(beside)
        rotated = any(t.get_rotation() for t in axis.get_xticklabels())
        lines = axis.xaxis.label.get_text().count("\n")  # the label's extra lines
        axis.legend(  # below the tick labels and the axis label (in font sizes)
            handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
            borderaxespad=(8.0 if rotated else 5.5) + 1.4 * lines,
            ncols=max(1, int(width / columns // 1.7)),
            fontsize=size, frameon=False,
        )  # fmt: skip
    heading = titles[0][0]
    title = 0.25 * (heading.get_text().count("\n") + 1) if heading is not None else 0.0
    return rows * (width / columns) * min(max(panel_h / panel_w, 0.3), 1.2) + 0.5 + title


def _legend_parts(legend: Legend) -> tuple[list[Artist], list[str], float | None]:
    """A legend's handles, labels and font size, to draw it again elsewhere."""
    handles = [h for h in legend.legend_handles if h is not None]
    size = float(legend.texts[0].get_fontsize()) if legend.texts else None
    return handles, [t.get_text() for t in legend.texts], size


def _below_figure(figure: Figure, legend: Legend, columns: int) -> None:
    """Replace ``legend`` by the same legend centred below the figure, ``columns`` wide."""
    handles, labels, size = _legend_parts(legend)
    legend.remove()
    figure.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=columns,
        fontsize=size, frameon=False,
    )  # fmt: skip


def file_stem(name: str) -> str:
    """``name`` as a file name inside the output folder, one per name: a plain name
    (lower-case ASCII letters, digits, ``_.=+,``; no leading dot; at most 150 characters)
    as it is; any other with its other characters as ``_`` and ``-`` plus 12 hex digits
    of its SHA-256 appended — so ids that differ only in separators or case (``a b``,
    ``a_b``, ``A_b``) get different files, also on case-insensitive file systems, and
    names read from a store can never point outside the folder."""
    if _PLAIN_NAME.fullmatch(name):
        return name
    readable = re.sub(r"[^\w.=+,]", "_", name, flags=re.ASCII)[:120].lstrip(".")
    return f"{readable or 'figure'}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def save(figure: Figure, folder: Path, name: str, run_id: str) -> list[Path]:
    """Write ``name``.png and ``name``.pdf (``name`` a stem from :func:`run_figures`) with
    the run id in their metadata."""
    if not _STEM.fullmatch(name):
        raise ValueError(f"figure name {name!r} is not a file stem (see file_stem)")
    writable_folder(folder, "--to")
    written = []
    try:
        for suffix, metadata in (
            ("png", {"Title": name, "Description": f"xai-harness run {run_id}"}),
            ("pdf", {"Title": name, "Subject": f"xai-harness run {run_id}"}),
        ):
            path = folder / f"{name}.{suffix}"
            figure.savefig(
                path, dpi=figure.get_dpi(), bbox_inches="tight", pad_inches=0.02, metadata=metadata
            )
            written.append(path)
    except OSError as exc:
        raise HarnessError(
            f"cannot write figure {name} to {folder} ({exc.strerror or exc}); free some "
            "space or pass --to with a writable folder"
        ) from exc
    finally:
        plt.close(figure)
    return written


def sweep_figure(results: pd.DataFrame, config: dict[str, Any]) -> Figure | None:
    """Accuracy gain (by-design) and Spearman with the ground truth vs irrelevant features.

    Mean over seeds with ± 1 sd bars. None when fewer than two datasets form a sweep.
    """
    features = feature_counts(config)
    counts = {dataset: irrelevant for dataset, (_, irrelevant) in features.items()}
    data = results[results["dataset"].isin(counts) & (results["status"] == "ok")].copy()
    if data["dataset"].nunique() < 2:
        return None
    data["irrelevant"] = data["dataset"].map(counts)
    colours = explainer_colours(list(results["explainer"].unique()))
    control = controls(results)
    labels = {
        "accuracy_gain": "accuracy gain over the twin (pp)",
        "ground_truth_rank_agreement": "Spearman ρ with ground truth",
        "reference_rank_agreement": "Spearman ρ with the reference explainer",
    }
    panels = [  # by role, whatever id the suite gave the metric
        (metric, f"{label} ({metric})" if metric != _LEGACY_ROLES[role] else label)
        for role, label in labels.items()
        for metric in role_metrics(data, role)
    ]
    gains = set(role_metrics(data, "accuracy_gain"))
    if not panels:
        return None
    relevant = {features[d][0] for d in data["dataset"].unique()}
    relevant_note = f"{relevant.pop()} relevant" if len(relevant) == 1 else "relevant: varies"
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    figure.subplots_adjust(wspace=0.35)
    explainers = sorted(data["explainer"].unique())
    spread = 0.012 * (max(counts.values()) - min(counts.values()) or 1)
    for axis, (metric, label) in zip(axes[0], panels, strict=True):
        block = data[(data["metric"] == metric) & data["value"].notna()]
        gain = metric in gains
        for explainer, rows in block.groupby("explainer"):
            stats = rows.groupby("irrelevant")["value"].agg(["mean", "std"]).sort_index()
            # dodge: explainers with equal values (e.g. a tie-capped ρ) stay visible
            offset = (explainers.index(explainer) - (len(explainers) - 1) / 2) * spread
            axis.errorbar(
                stats.index + offset,
                stats["mean"],
                yerr=stats["std"].fillna(0),
                marker="o",
                markersize=4,
                capsize=3,
                label=explainer,
                color=colours[explainer],
                linestyle=":" if explainer in control else "-",
            )
        if gain:
            axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xlabel(f"irrelevant features ({relevant_note})")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    handles: dict[str, Any] = {}  # label → artist, first panel that has it
    for axis in axes[0]:
        handles.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
    axes[0][-1].legend(
        handles.values(),
        handles.keys(),
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.02, 0.5),
    )
    figure.suptitle("Sweep over irrelevant features (mean ± sd over seeds; points dodged)")
    return figure


#: With a hue, explainers are told apart by line style (colours show the hue).
LINE_STYLES = ("-", "--", ":", "-.")

#: Roles of the metrics a parameter sweep draws when the figure names none.
SWEEP_ROLES = (
    "accuracy_gain",
    "accuracy_gain_relative",
    "ground_truth_rank_agreement",
    "ground_truth_linear_agreement",
    "reference_rank_agreement",
)


def parameter_sweep_figure(results: pd.DataFrame, spec: dict[str, Any]) -> Figure | None:
    """Metrics against a swept parameter ``spec["x"]``: one line per explainer (the
    entry it was generated from; per model too when there are several) and, with
    ``spec["hue"]``, per value of that second swept parameter (colour: the hue's value,
    line style: the explainer); the mean over
    seeds with a 95 % t-interval over seeds (each seed's value averaged over the
    cells of any other swept parameter, named in the title). Panels: ``spec["metric"]``,
    or those of the :data:`SWEEP_ROLES` the run has."""
    x, hue = spec["x"], spec.get("hue")
    if x not in results.columns:
        return None
    data = results[(results["status"] == "ok") & results["value"].notna() & results[x].notna()]
    metrics = (
        [spec["metric"]]
        if spec.get("metric")
        else [m for role in SWEEP_ROLES for m in role_metrics(data, role)]
    )
    gains = {*role_metrics(data, "accuracy_gain"), *role_metrics(data, "accuracy_gain_relative")}
    if data.empty or not metrics:
        return None
    swept = [c for c in results.columns[list(results.columns).index("explainer_base") + 1 :]]
    averaged = [c for c in swept if c not in (x, hue) and data[c].notna().any()]
    several_models = data["model"].nunique() > 1  # one line per explainer and model then
    data = data.assign(
        line=data["explainer_base"] + (" (" + data["model"] + ")" if several_models else "")
    )
    groups = ["line", *([hue] if hue else [])]
    colours = explainer_colours(list(dict.fromkeys(data["line"])))
    palette = plt.get_cmap("viridis")
    hues = sorted(data[hue].dropna().unique()) if hue else []
    figure, axes = plt.subplots(1, len(metrics), figsize=(7.5 * len(metrics), 4.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        block = data[data["metric"] == metric]
        for key, rows in block.groupby(groups, sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            seeds = rows.groupby([x, "seed"])["value"].mean()
            points = sorted(seeds.index.get_level_values(0).unique())
            means = [seeds[p].mean() for p in points]
            bands = [t_interval(seeds[p].to_numpy()) for p in points]
            colour = (
                palette(hues.index(key[1]) / max(len(hues) - 1, 1))
                if hue and key[1] in hues
                else colours[key[0]]
            )
            label = key[0] if not hue else f"{key[0]}, {hue}={key[1]}"
            style = LINE_STYLES[list(colours).index(key[0]) % len(LINE_STYLES)] if hue else "-"
            axis.plot(points, means, marker="o", color=colour, linestyle=style, label=label)
            low, high = zip(*bands, strict=True)
            axis.fill_between(points, low, high, color=colour, alpha=0.15)
        if metric in gains:
            axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xlabel(x)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    note = f"; averaged over {', '.join(averaged)}" if averaged else ""
    figure.suptitle(f"Sweep over {x}: mean and 95% t-interval over seeds{note}", fontsize=10)
    figure.tight_layout()
    return figure


def importance_figure(
    results: pd.DataFrame, arrays: dict[str, dict[str, np.ndarray]], dataset: str, model: str
) -> Figure | None:
    """Each explainer's global importance per feature, named (as a share of the total
    |importance| of its seed, so explainers compare on one scale; mean ± sd over seeds);
    bars of relevant features are coloured, irrelevant ones grey."""
    importance = arrays[artifacts.GLOBAL_IMPORTANCE]
    truth = arrays[artifacts.GROUND_TRUTH_IMPORTANCE]
    cells = ok_rows(results, dataset, model).drop_duplicates("cell_id")
    cells = cells[(cells["explainer_role"] != "control") & cells["cell_id"].isin(importance)]
    truth_vector = next((truth[c] for c in cells["cell_id"] if c in truth), None)
    if cells.empty or truth_vector is None:
        return None
    names = next((arrays.get(artifacts.COLUMN_NAMES, {}).get(c) for c in cells["cell_id"]), None)
    if names is None or len(names) != len(truth_vector):
        names = np.arange(len(truth_vector)).astype(str)
    explainers = list(dict.fromkeys(cells["explainer"]))
    colours = explainer_colours(list(results["explainer"].unique()))
    figure, axes = plt.subplots(
        len(explainers),
        1,
        figsize=(max(6, 0.28 * len(truth_vector) + 2), 1.6 * len(explainers) + 0.8),
        sharex=True,
        squeeze=False,
    )
    features = np.arange(len(truth_vector))
    relevant = truth_vector > 0
    for axis, explainer in zip(axes[:, 0], explainers, strict=True):
        ids = cells.loc[cells["explainer"] == explainer, "cell_id"]
        stacked = np.stack([np.abs(importance[c]) / np.abs(importance[c]).sum() for c in ids])
        bar_colours = [colours[explainer] if r else "lightgrey" for r in relevant]
        axis.bar(
            features,
            stacked.mean(axis=0),
            yerr=stacked.std(axis=0),
            color=bar_colours,
            capsize=2,
            error_kw={"linewidth": 0.8},
        )
        axis.set_ylabel(explainer, rotation=0, ha="right", va="center", fontsize=9)
        axis.tick_params(axis="y", labelsize=7)
    rotation = 0 if max(len(str(n)) for n in names) <= 3 else 90
    axes[-1, 0].set_xticks(features, [str(n) for n in names], rotation=rotation, fontsize=7)
    axes[-1, 0].set_xlabel("feature (coloured: relevant, grey: irrelevant)")
    figure.suptitle(
        f"Global importance on {dataset} ({model}): share of the total |importance| per "
        "seed, mean ± sd over seeds",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def trajectory_figure(
    trajectories: dict[str, np.ndarray], truth: dict[str, np.ndarray], dataset: str, model: str
) -> Figure | None:
    """ScoresActivation's softmax weights per epoch for the lowest seed of a dataset/model."""
    prefix = f"{dataset}/{model}/"
    cells = sorted(
        (c for c in trajectories if c.startswith(prefix)),
        key=lambda c: int(re.sub(r".*seed=", "", c)),
    )
    if not cells:
        return None
    trajectory = trajectories[cells[0]]
    truth_vector = truth.get(cells[0])
    relevant = truth_vector > 0 if truth_vector is not None else np.zeros(trajectory.shape[1], bool)
    figure, axis = plt.subplots(figsize=(6, 3.8))
    epochs = np.arange(len(trajectory))
    for feature in np.flatnonzero(~relevant):
        axis.plot(epochs, trajectory[:, feature], color="lightgrey", linewidth=1)
    palette = plt.get_cmap("tab10")
    for rank, feature in enumerate(np.flatnonzero(relevant)):
        axis.plot(
            epochs,
            trajectory[:, feature],
            color=palette(rank % 10),
            linewidth=1.8,
            label=f"feature {feature} (relevant)",
        )
    axis.axhline(
        1 / trajectory.shape[1], color="black", linestyle="--", linewidth=0.8, label="uniform 1/d"
    )
    axis.set_xlabel("epoch (0 = initial)")
    axis.set_ylabel("softmax(s) weight")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    seed = cells[0].split("/")[-1]
    axis.set_title(f"ScoresActivation weights during training: {dataset}, {seed}")
    return figure


def gallery_figure(
    results: pd.DataFrame,
    arrays: dict[str, dict[str, np.ndarray]],
    dataset: str,
    model: str,
    spec: dict[str, Any] | None = None,
) -> Figure | None:
    """Rows = images, columns = the input and each explainer's map (lowest seed); the
    ground-truth mask's contour is drawn on every panel, each row is labelled with the
    image's class and test row. The stored images take every class in turn; the spec's
    ``images`` (test rows) or ``classes`` (class names) choose among them — a row or
    class not stored is a :class:`HarnessError` naming those that are. Each explainer
    keeps one colour map down its column: diverging on a symmetric scale (±max |map|)
    when its explanation is signed, sequential otherwise. Maps are scaled per panel, so
    shapes, not magnitudes, are compared."""
    spec = spec or {}
    cells = ok_rows(results, dataset, model).drop_duplicates("cell_id")
    cells = cells[cells["cell_id"].isin(arrays[artifacts.GALLERY_MAPS])]
    if cells.empty:
        return None
    seed = cells["seed"].min()
    cells = cells[cells["seed"] == seed]
    first = cells["cell_id"].iloc[0]
    images = arrays[artifacts.GALLERY_INPUTS][first]
    masks = arrays.get(artifacts.GALLERY_MASKS, {}).get(first)
    rows_of = arrays.get(artifacts.GALLERY_ROWS, {}).get(first)
    classes_of = arrays.get(artifacts.GALLERY_LABELS, {}).get(first)
    shown = _chosen_images(spec, rows_of, classes_of, len(images), dataset)
    columns = ["input", *cells["explainer"]]
    figure, axes = plt.subplots(
        len(shown),
        len(columns),
        figsize=(1.35 * len(columns), 1.4 * len(shown) + 0.6),
        squeeze=False,
    )
    for r, image in enumerate(shown):
        for c, title in enumerate(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                picture = images[image]
                picture = picture.transpose(1, 2, 0) if picture.shape[0] == 3 else picture[0]
                axis.imshow(picture, cmap="gray")
                if rows_of is not None and classes_of is not None:
                    axis.set_ylabel(f"{classes_of[image]}\nrow {rows_of[image]}", fontsize=7)
            else:
                cell = cells["cell_id"].iloc[c - 1]
                heat = arrays[artifacts.GALLERY_MAPS][cell][image]
                signed = arrays.get(artifacts.EXPLANATION_SIGNED, {}).get(cell)
                if bool(signed) if signed is not None else heat.min() < 0:
                    bound = float(np.abs(heat).max()) or 1.0
                    axis.imshow(heat, cmap="RdBu_r", vmin=-bound, vmax=bound)
                else:
                    axis.imshow(heat, cmap="viridis")
            if masks is not None and masks[image].any():
                axis.contour(masks[image], levels=[0.5], colors="red", linewidths=0.8)
            if r == 0:
                axis.set_title(title, fontsize=7, rotation=30, ha="left", va="bottom")
    figure.suptitle(
        f"{dataset} / {model}, seed {seed}: maps scaled per panel (blue–red: signed, "
        "symmetric; viridis: unsigned); red contour = ground-truth mask",
        fontsize=9,
    )
    return figure


def _chosen_images(
    spec: dict[str, Any],
    rows: np.ndarray | None,
    classes: np.ndarray | None,
    stored: int,
    dataset: str,
) -> list[int]:
    """Positions of the stored gallery images the spec asks for (all by default)."""
    wanted_rows, wanted_classes = spec.get("images") or [], spec.get("classes") or []
    if not wanted_rows and not wanted_classes:
        return list(range(stored))
    if rows is None or classes is None:
        raise HarnessError(
            f"figure 'gallery' of {dataset}: this run stored no rows or classes with its "
            "gallery (run before they were kept); run the suite again to choose images"
        )
    for wanted, known, what in (
        (wanted_rows, rows, "test row"),
        (wanted_classes, classes, "class"),
    ):
        missing = [w for w in wanted if str(w) not in {str(k) for k in known}]
        if missing:
            listed = ", ".join(dict.fromkeys(str(k) for k in known))
            raise HarnessError(
                f"figure 'gallery' of {dataset}: {what} {missing[0]} is not among the "
                f"images stored for the gallery ({listed}); choose among them"
            )
    return [
        i
        for i in range(stored)
        if (not wanted_rows or int(rows[i]) in wanted_rows)
        and (not wanted_classes or str(classes[i]) in wanted_classes)
    ]


#: Localisation metrics drawn against accuracy, in this order, when the run has them.
#: Localisation metrics drawn for runs stored before metric families were kept.
LOCALISATION_PANELS = (
    "pointing_game",
    "energy_pointing_game",
    "activation_precision",
    "activation_sensitivity",
    "relevance_rank_accuracy",
    "mask_roc_auc",
)


#: The metric each role was, for runs stored before roles were kept (read by name then).
_LEGACY_ROLES = {
    "accuracy": "accuracy",
    "accuracy_gain": "accuracy_gain_pp",
    "accuracy_gain_relative": "accuracy_gain_rel",
    "ground_truth_rank_agreement": "spearman_gt",
    "ground_truth_linear_agreement": "pearson_gt",
    "reference_rank_agreement": "spearman_ref",
    "deletion_curve": "deletion_auc",
    "insertion_curve": "insertion_auc",
    "patch_deletion_curve": "deletion_patch_auc",
    "patch_deletion_random": "deletion_patch_auc_random",
    "deletion_random": "deletion_auc_random",
    "insertion_random": "insertion_auc_random",
    "precision_at_k_curve": "topk_patch_precision",
    "randomisation_curve": "mprt",
    "explain_time": "explain_seconds",
    "explain_time_per_row": "explain_seconds_per_row",
}


def _stored_fact_metrics(
    rows: pd.DataFrame, column: str, value: str, legacy: tuple[str, ...]
) -> list[str]:
    """The ids of the metrics whose stored ``column`` (a fact kept with each score) is
    ``value``, in suite order, whatever the suite named them; for rows stored before the
    fact was kept, the metrics named one of ``legacy``."""
    rows = rows.drop_duplicates("metric")
    if column in rows and rows[column].notna().any():
        return list(rows.loc[rows[column] == value, "metric"])
    return list(rows.loc[rows["metric_name"].isin(legacy), "metric"])


def role_metrics(data: pd.DataFrame, role: str) -> list[str]:
    """The ids of the metrics with ``role`` in ``data`` (see :func:`_stored_fact_metrics`)."""
    return _stored_fact_metrics(data, "metric_role", role, (_LEGACY_ROLES[role],))


def family_metrics(data: pd.DataFrame, family: str, legacy: tuple[str, ...] = ()) -> list[str]:
    """The ids of the explanation metrics of ``family`` in ``data`` (see
    :func:`_stored_fact_metrics`)."""
    kinds = data["metric_kind"].fillna("explanation") if "metric_kind" in data else None
    explanation = data if kinds is None else data[kinds == "explanation"]
    return _stored_fact_metrics(explanation, "metric_family", family, legacy)


def accuracy_localisation_figure(results: pd.DataFrame, dataset: str) -> Figure | None:
    """Each localisation metric (by family) against model accuracy: one point per model ×
    explainer (mean ± sd over seeds on both axes); colour = explainer, marker = model.
    Explainers of one model share its accuracy, so their points are dodged sideways (by
    at most 1 % of the accuracy range, said in the title); axes stay within the metrics'
    ranges. None without accuracy or a localisation metric."""
    data = results[(results["dataset"] == dataset) & results["value"].notna()]
    panels = [(m, m) for m in family_metrics(data, "localisation", LOCALISATION_PANELS)]
    accuracies = role_metrics(data, "accuracy")
    if not len(accuracies) or not panels:
        return None
    colours = explainer_colours(list(results["explainer"].unique()))
    control = controls(results)
    markers = dict(zip(data["model"].unique(), "osD^vP*X", strict=False))
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    accuracy_rows = data[data["metric"] == accuracies[0]]
    accuracy = accuracy_rows.set_index("cell_id")["value"]
    explainers = list(dict.fromkeys(data["explainer"]))
    dodge = {e: (i - (len(explainers) - 1) / 2) * 0.01 / max(len(explainers) - 1, 1)
             for i, e in enumerate(explainers)}  # fmt: skip
    for axis, (metric, label) in zip(axes.flat, panels, strict=False):
        block = data[data["metric"] == metric].copy()
        block["accuracy"] = block["cell_id"].map(accuracy)
        stats = block.groupby(["model", "explainer"], sort=False)[["accuracy", "value"]]
        means, spreads = stats.mean(), stats.std().fillna(0)
        for (model, explainer), point in means.iterrows():
            spread = spreads.loc[(model, explainer)]
            axis.errorbar(
                point["accuracy"] + dodge[explainer],
                point["value"],
                xerr=spread["accuracy"],
                yerr=spread["value"],
                marker=markers[model],
                color=colours[explainer],
                markersize=6,
                capsize=2,
                linewidth=0.8,
                linestyle="none",
                mfc="none" if explainer in control else colours[explainer],
            )
        within_range(axis, accuracy_rows, "x")
        within_range(axis, block, "y")
        axis.set_xlabel("model accuracy")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    handles = [
        plt.Line2D(
            [],
            [],
            color=colours[e],
            marker="o",
            linestyle="none",
            label=f"{e} (control)" if e in control else e,
            mfc="none" if e in control else colours[e],
        )
        for e in explainers
    ]
    if len(markers) > 1:  # one model needs no marker legend
        handles += [
            plt.Line2D([], [], color="black", marker=m, linestyle="none", mfc="none",
                       label=f"model: {model}")
            for model, m in markers.items()
        ]  # fmt: skip
    figure.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(
        f"{dataset}: localisation against accuracy (mean ± sd over seeds; hollow = control; "
        "points dodged sideways by ≤ 0.005)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def faithfulness_figure(
    results: pd.DataFrame, curves: dict[str, dict[str, np.ndarray]], dataset: str, model: str
) -> Figure | None:
    """Mean deletion and insertion curves (over explained rows, then seeds) per explainer;
    the random-order curve of the black box dashed. Legend: the mean area."""
    cells = ok_rows(results, dataset, model)
    kinds = [
        (role, role_metrics(cells, role)[0])
        for role in ("deletion_curve", "insertion_curve")
        if role_metrics(cells, role)
    ]
    if not kinds:
        return None
    colours = explainer_colours(list(results["explainer"].unique()))
    control = controls(results)
    figure, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4), squeeze=False)
    for axis, (kind, metric) in zip(axes[0], kinds, strict=True):
        scored = cells[(cells["metric"] == metric) & cells["value"].notna()]
        for explainer, rows in scored.groupby("explainer", sort=False):
            stacked = [
                curves[artifacts.metric_array(metric, artifacts.CURVE)][c]
                for c in rows["cell_id"]
                if c in curves.get(artifacts.metric_array(metric, artifacts.CURVE), {})
            ]
            if not stacked:
                continue
            curve = np.mean(stacked, axis=0)
            fractions = np.linspace(0, 1, len(curve))
            axis.plot(
                fractions,
                curve,
                color=colours[explainer],
                linestyle=":" if explainer in control else "-",
                label=f"{explainer} ({rows['value'].mean():.3f})",
            )
        random = "deletion_random" if kind == "deletion_curve" else "insertion_random"
        reference = _random_order_curve(cells, curves, random)
        if reference is not None:
            axis.plot(
                np.linspace(0, 1, len(reference)),
                reference,
                color="black",
                linestyle="--",
                linewidth=1.2,
                label="random order (black box)",
            )
        action = "removed" if kind == "deletion_curve" else "restored"
        axis.set_xlabel(f"fraction of features {action}, highest attribution first")
        axis.set_ylabel("probability of the explained class")
        axis.set_title(
            (
                "deletion (lower area is better)"
                if kind == "deletion_curve"
                else "insertion (higher area is better)"
            ),
            fontsize=10,
        )
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.suptitle(f"{dataset} / {model}: faithfulness curves (mean over images and seeds)")
    figure.tight_layout()
    return figure


def family_panels(
    block: pd.DataFrame,
    checks: list[Any],
    draw: Callable[[Axes, int, Any], None],
    ticks: Callable[[Any], tuple[str, str]],
    ylabel: str,
    title: str,
    zero_line: bool = False,
) -> Figure:
    """One panel per metric family of the checked metrics (``check.metric``), panel
    widths by metric count; per metric ``draw(axis, x, check)`` and its tick label and
    colour ``ticks(check)``; a line at 0 over them with ``zero_line``; the first panel's
    legend for the figure."""
    families = block.drop_duplicates("metric").set_index("metric")["metric_family"]
    grouped: dict[str, list[Any]] = {}
    for check in checks:
        family = families.get(check.metric)
        grouped.setdefault(str(family) if isinstance(family, str) else "other", []).append(check)
    widths = [len(members) for members in grouped.values()]
    figure, axes = plt.subplots(
        1, len(grouped), figsize=(1.3 * sum(widths) + 1.2 * len(grouped) + 1.5, 3.8),
        squeeze=False, gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    for axis, (family, members) in zip(axes[0], grouped.items(), strict=True):
        for x, check in enumerate(members):
            draw(axis, x, check)
        if zero_line:
            axis.axhline(0, color="black", linewidth=0.8)
        labels, colours = zip(*(ticks(c) for c in members), strict=True)
        axis.set_xticks(range(len(members)), labels, rotation=30, ha="right", fontsize=7)
        for tick, colour in zip(axis.get_xticklabels(), colours, strict=True):
            tick.set_color(colour)
        axis.set_xlim(-0.6, len(members) - 0.4)
        axis.set_title(family, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    handles, legend = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, legend, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def control_separation_figure(results: pd.DataFrame, dataset: str, model: str) -> Figure | None:
    """Does each metric rank the controls (:mod:`harness.meta_evaluation`)? One panel per
    metric family; per metric the paired differences oracle − random, random − inverted
    (and oracle − edge map) in the metric's direction, as a share of its range where it
    declares one, with their 95 % t-intervals; the metric's label says its verdict."""
    from harness.meta_evaluation import control_separation

    block = results[(results["dataset"] == dataset) & (results["model"] == model)]
    checks = [c for c in control_separation(block) if c.differences]
    if not checks:
        return None
    pairs = list(dict.fromkeys(f"{d.better} − {d.worse}" for c in checks for d in c.differences))
    palette = plt.get_cmap("tab10")
    colours = {pair: palette(i % palette.N) for i, pair in enumerate(pairs)}

    def draw(axis: Axes, x: int, check: Any) -> None:
        bounds = value_range(block[block["metric"] == check.metric])
        scale = bounds[1] - bounds[0] if bounds is not None else 1.0
        for k, difference in enumerate(check.differences):
            label = f"{difference.better} − {difference.worse}"
            offset = (k - (len(check.differences) - 1) / 2) * 0.22
            axis.errorbar(
                x + offset, difference.mean / scale,
                yerr=[[(difference.mean - difference.low) / scale],
                      [(difference.high - difference.mean) / scale]],
                marker="o", markersize=4, capsize=2, linestyle="none", color=colours[label],
                label=label if x == 0 else None,
            )  # fmt: skip

    verdict = {"fails": "#b00020", "separates": "#0a6b2d"}
    return family_panels(
        block,
        checks,
        draw,
        lambda c: (f"{c.metric}\n({c.verdict})", verdict.get(c.verdict, "#777")),
        "difference in the right direction\n(share of the metric's range)",
        f"{dataset} / {model}: do the metrics rank the controls? (paired by seed, 95% "
        "t-intervals; above 0 = the right order)",
        zero_line=True,
    )


def meta_consistency_figure(results: pd.DataFrame, dataset: str, model: str) -> Figure | None:
    """MetaQuantus's scores of each meta-evaluated metric (:mod:`harness.meta_consistency`):
    one panel per metric family; per metric NR, AR and MC, mean over seeds with 95 %
    t-intervals, and the chance levels of NR and AR (a metric of noise) as short dashes;
    a metric flagged (NR or AR not clearly above chance) has a red label."""
    from harness.meta_consistency import META_SCORES, meta_checks

    block = results[(results["dataset"] == dataset) & (results["model"] == model)]
    checks = [c for c in meta_checks(block) if any(c.values[w] for w in META_SCORES)]
    if not checks:
        return None
    palette = plt.get_cmap("tab10")
    colours = {which: palette(i) for i, which in enumerate(META_SCORES)}

    def draw(axis: Axes, x: int, check: Any) -> None:
        for k, which in enumerate(META_SCORES):
            mean, low, high = check.summary(which)
            offset = (k - 1) * 0.22
            if np.isnan(mean):
                continue
            spread = [[0.0], [0.0]] if np.isnan(low) else [[mean - low], [high - mean]]
            axis.errorbar(
                x + offset, mean, yerr=spread, marker="o", markersize=4, capsize=2,
                linestyle="none", color=colours[which], label=which.upper() if x == 0 else None,
            )  # fmt: skip
            if which != "mc":
                dash = (x + offset - 0.09, x + offset + 0.09)
                axis.hlines(check.chance[which], *dash, colors=colours[which],
                            linestyles="dashed", linewidth=1)  # fmt: skip
        axis.set_ylim(-0.02, 1.02)

    return family_panels(
        block,
        checks,
        draw,
        lambda c: (c.metric, "#b00020" if c.flags else "#0a6b2d"),
        "score (1 = ideal); dashes: chance",
        f"{dataset} / {model}: noise resilience (NR), adversary reactivity (AR), "
        "meta-consistency (MC) (MetaQuantus; mean over seeds, 95% t-intervals)",
    )


def randomisation_figure(
    results: pd.DataFrame, arrays: dict[str, dict[str, np.ndarray]], dataset: str, model: str
) -> Figure | None:
    """One panel per MPRT metric id: each explainer's similarity to the trained model's
    explanation after each randomised layer (top first; mean over seeds), controls dotted.
    Legend: the score (mean over layers)."""
    cells = ok_rows(results, dataset, model)
    metrics = role_metrics(cells, "randomisation_curve")
    if not metrics:
        return None
    colours = explainer_colours(list(results["explainer"].unique()))
    control = controls(results)
    figure, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    drawn = False
    for axis, metric in zip(axes[0], metrics, strict=True):
        similarity = arrays.get(artifacts.metric_array(metric, artifacts.SIMILARITY), {})
        layers = arrays.get(artifacts.metric_array(metric, artifacts.LAYERS), {})
        names: list[str] = []
        for explainer, rows in cells[cells["metric"] == metric].groupby("explainer", sort=False):
            stacked = [similarity[c] for c in rows["cell_id"] if c in similarity]
            if not stacked or np.isnan(stacked).all():  # constant maps: undefined
                continue
            names = [str(n) for n in layers[rows["cell_id"].iloc[0]]]
            score = rows["value"].mean()
            axis.plot(
                range(len(names)),
                np.mean(stacked, axis=0),
                marker="o",
                color=colours[explainer],
                linestyle=":" if explainer in control else "-",
                label=f"{explainer} ({score:.2f})",
            )
            drawn = True
        axis.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        axis.set_xlabel("randomised layer (from the top)")
        axis.set_ylabel("similarity to the trained model's map")
        axis.set_title(f"{metric}: lower means the map depends on the model", fontsize=10)
        axis.set_ylim(-1.05, 1.05)
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if not drawn:
        plt.close(figure)
        return None
    figure.suptitle(f"{dataset} / {model}: model parameter randomisation")
    figure.tight_layout()
    return figure


#: Curves drawn against k, by figure kind: (metric name, stored array, x label, y label,
#: title, random-order reference metric).
K_CURVES = {
    "precision_at_k": (
        "precision_at_k_curve",
        artifacts.PRECISION_AT_K,
        "k (top-k patches per image)",
        "precision@k (patches touching the mask)",
        "top-k patch precision (higher is better)",
        None,
    ),
    "patch_deletion": (
        "patch_deletion_curve",
        artifacts.CURVE,
        "k (top-k patches occluded)",
        "still predicted / probability ratio",
        "patch deletion (lower area is better)",
        "patch_deletion_random",
    ),
}


def k_curve_figure(
    results: pd.DataFrame,
    arrays: dict[str, dict[str, np.ndarray]],
    dataset: str,
    model: str,
    kind: str,
) -> Figure | None:
    """One panel per metric id of the kind's metric: each explainer's mean curve over
    seeds against k with a 95 % t-interval band over seeds (controls dotted; the random
    order, where the kind has one, dashed black). Legend: the mean score."""
    role, key, xlabel, ylabel, title, random_name = K_CURVES[kind]
    cells = ok_rows(results, dataset, model)
    metrics = role_metrics(cells, role)
    shown = set(cells["cell_id"])
    metrics = [m for m in metrics if shown & set(arrays.get(artifacts.metric_array(m, key), {}))]
    if not metrics:
        return None
    colours = explainer_colours(list(results["explainer"].unique()))
    control = controls(results)
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        stored = arrays[artifacts.metric_array(metric, key)]
        scored = cells[(cells["metric"] == metric) & cells["value"].notna()]
        for explainer, rows in scored.groupby("explainer", sort=False):
            stacked = np.array([stored[c] for c in rows["cell_id"] if c in stored], dtype=float)
            if not len(stacked):
                continue
            ks = np.arange(len(stacked[0])) + (1 if kind == "precision_at_k" else 0)
            mean = np.nanmean(stacked, axis=0)
            style = ":" if explainer in control else "-"
            axis.plot(
                ks,
                mean,
                color=colours[explainer],
                linestyle=style,
                label=f"{explainer} ({rows['value'].mean():.3f})",
            )
            if len(stacked) > 1:
                band = np.array([t_interval(column[~np.isnan(column)]) for column in stacked.T])
                axis.fill_between(ks, band[:, 0], band[:, 1], color=colours[explainer], alpha=0.15)
        if random_name is not None:
            reference = _random_order_curve(cells, arrays, random_name)
            if reference is not None:
                axis.plot(
                    np.arange(len(reference)),
                    reference,
                    color="black",
                    linestyle="--",
                    linewidth=1.2,
                    label="random order (black box)",
                )
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.set_title(f"{title}\n{metric}", fontsize=9)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.suptitle(f"{dataset} / {model}: mean over seeds, 95% t-interval band")
    figure.tight_layout()
    return figure


def _random_order_curve(
    cells: pd.DataFrame, curves: dict[str, dict[str, np.ndarray]], role: str
) -> np.ndarray | None:
    """The random-order curve (the metric of ``role``) on the black box: mean over the
    seeds of one post-hoc cell."""
    rows = cells[cells["metric"].isin(role_metrics(cells, role)) & cells["value"].notna()]
    rows = rows[rows["explainer_role"] != "by_design"]
    if rows.empty:
        return None
    stored = curves.get(artifacts.metric_array(rows["metric"].iloc[0], artifacts.CURVE), {})
    first = rows[rows["explainer"] == rows["explainer"].iloc[0]]
    stacked = [stored[c] for c in first["cell_id"] if c in stored]
    return np.mean(stacked, axis=0) if stacked else None


def metric_figure(results: pd.DataFrame, metric: str) -> Figure | None:
    """One metric per dataset panel: mean over seeds with its 95 % t-interval per model ×
    explainer (points; hollow = control), in the suite's order. None without values."""
    data = results[(results["metric"] == metric) & results["value"].notna()]
    if data.empty:
        return None
    datasets = list(dict.fromkeys(data["dataset"]))
    colours = explainer_colours(list(results["explainer"].unique()))
    control = controls(results)
    entries = list(dict.fromkeys(zip(data["model"], data["explainer"], strict=True)))
    figure, axes = plt.subplots(
        1,
        len(datasets),
        figsize=(max(5.0, 0.42 * len(entries) + 2) * len(datasets), 4.2),
        squeeze=False,
    )
    higher = bool(data["higher_is_better"].iloc[0])
    several_models = len({m for m, _ in entries}) > 1
    for axis, dataset in zip(axes[0], datasets, strict=True):
        block = data[data["dataset"] == dataset]
        present = set(zip(block["model"], block["explainer"], strict=True))
        shown = [e for e in entries if e in present]
        labels = []
        for x, (model, explainer) in enumerate(shown):
            values = block.loc[
                (block["model"] == model) & (block["explainer"] == explainer), "value"
            ].to_numpy()
            labels.append(f"{explainer} ({model})" if several_models else explainer)
            if not len(values):
                continue
            mean = values.mean()
            low, high = t_interval(values)
            error = [[mean - low], [high - mean]] if not np.isnan(low) else None
            axis.errorbar(
                x,
                mean,
                yerr=error,
                marker="o",
                capsize=3,
                color=colours[explainer],
                mfc="none" if explainer in control else colours[explainer],
            )
        axis.set_xticks(range(len(shown)), labels, rotation=45, ha="right", fontsize=8)
        within_range(axis, block, "y")
        if axis is axes[0, 0]:  # one label for the row of panels
            axis.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
        axis.set_title(dataset, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(f"{metric}: mean and 95% t-interval over seeds (hollow = control)")
    figure.tight_layout()
    return figure


def runtime_figure(results: pd.DataFrame) -> Figure | None:
    """Explanation time per row (or per call) by explainer, log scale, per dataset panel."""
    for role in ("explain_time_per_row", "explain_time"):
        chosen = role_metrics(results, role)
        data = results[results["metric"].isin(chosen[:1]) & results["value"].notna()]
        if not data.empty:
            break
    else:
        return None
    figure = metric_figure(
        data.assign(value=data["value"].clip(lower=1e-7)), data["metric"].iloc[0]
    )
    assert figure is not None
    for axis in figure.axes:
        axis.set_yscale("log")
    figure.axes[0].set_ylabel("seconds (log scale)")
    figure.suptitle(f"{chosen[0]}: mean and 95% t-interval over seeds, log scale")
    return figure


#: Figure kinds a suite's ``[[figures]]`` may name (see the module docstring).
#: Every kind of figure, in drawing order (declared once, with the suite schema).
FIGURE_KINDS: tuple[str, ...] = typing.get_args(FigureKind)


@dataclass
class RunData:
    """What the figures read from the store for one run."""

    run_id: str
    config: dict[str, Any]
    results: pd.DataFrame
    arrays: dict[str, dict[str, np.ndarray]]


def load_run_data(store: ResultsStore, run_id: str) -> RunData:
    names = [
        artifacts.GLOBAL_IMPORTANCE,
        artifacts.GROUND_TRUTH_IMPORTANCE,
        artifacts.SCORE_TRAJECTORY,
        artifacts.GALLERY_MAPS,
        artifacts.GALLERY_INPUTS,
        artifacts.GALLERY_MASKS,
        artifacts.GALLERY_ROWS,
        artifacts.GALLERY_LABELS,
        artifacts.COLUMN_NAMES,
        artifacts.EXPLANATION_SIGNED,
    ]
    from harness.meta_consistency import META_SECONDS

    costs = (artifacts.SECONDS, META_SECONDS)
    drawn = tuple(f".{key}" for key in (*artifacts.FIGURE_ARRAYS, *costs))
    names += [n for n in store.array_names(run_id) if n.endswith(drawn)]
    return RunData(
        run_id=run_id,
        config=store.run_info(run_id)["config"],
        results=store.results(run_id),
        arrays={name: store.arrays(run_id, name) for name in names},
    )


def default_figures(data: RunData) -> list[dict[str, Any]]:
    """Every kind once, and a point plot per explanation metric of the run."""
    summary = data.results.drop_duplicates("metric")
    metrics = list(
        summary.loc[summary["metric_kind"].fillna("explanation") == "explanation", "metric"]
    )
    kinds = [k for k in FIGURE_KINDS if k != "metric"]
    return [{"kind": k} for k in kinds] + [{"kind": "metric", "metric": m} for m in metrics]


def draw(
    spec: dict[str, Any], data: RunData
) -> list[tuple[tuple[str, ...], Callable[[], Figure | None]]]:
    """:func:`planned` figures, each drawn with the spec's paper options (:func:`styled`)."""
    return [
        (parts, functools.partial(styled, drawing, spec)) for parts, drawing in planned(spec, data)
    ]


def planned(
    spec: dict[str, Any], data: RunData
) -> list[tuple[tuple[str, ...], Callable[[], Figure | None]]]:
    """The figures of one spec (kind, optional name, metric and dataset/model/explainer
    filters), planned: (name parts, a function drawing the figure or returning None when
    the kind does not apply) pairs — the name, then the dataset and model ids it shows
    (see :func:`run_figures`). Drawn one at a time, so a run with hundreds of datasets
    never holds hundreds of figures."""
    results = data.results
    for key, column in (("datasets", "dataset"), ("models", "model"), ("explainers", "explainer")):
        if spec.get(key):  # an id, or the id of a swept entry (selects all it generated)
            chosen = results[column].isin(spec[key])
            if f"{column}_base" in results.columns:
                chosen |= results[f"{column}_base"].isin(spec[key])
            results = results[chosen]
    results = relabelled(results, data.config)
    kind, arrays = spec["kind"], data.arrays
    name = spec.get("name") or (f"metric_{spec['metric']}" if kind == "metric" else kind)
    if kind == "sweep" and spec.get("x"):
        parts = (spec.get("name") or f"sweep_{spec['x']}",)
        return [(parts, functools.partial(parameter_sweep_figure, results, spec))]
    if kind == "sweep":
        parts = (spec.get("name") or "sweep_irrelevant_features",)
        return [(parts, functools.partial(sweep_figure, results, data.config))]
    if kind == "metric":
        return [((name,), functools.partial(metric_figure, results, spec["metric"]))]
    if kind == "runtime":
        return [((name,), functools.partial(runtime_figure, results))]
    if kind == "accuracy_localisation":
        return [
            ((name, str(d)), functools.partial(accuracy_localisation_figure, results, d))
            for d in results["dataset"].unique()
        ]
    truth = arrays[artifacts.GROUND_TRUTH_IMPORTANCE]
    per_group: dict[str, Callable[[str, str], Figure | None]] = {
        "importance": lambda d, m: importance_figure(results, arrays, d, m),
        "trajectory": lambda d, m: trajectory_figure(
            arrays[artifacts.SCORE_TRAJECTORY], truth, d, m
        ),
        "gallery": lambda d, m: gallery_figure(results, arrays, d, m, spec),
        "faithfulness": lambda d, m: faithfulness_figure(results, arrays, d, m),
        "precision_at_k": lambda d, m: k_curve_figure(results, arrays, d, m, kind),
        "patch_deletion": lambda d, m: k_curve_figure(results, arrays, d, m, kind),
        "randomisation": lambda d, m: randomisation_figure(results, arrays, d, m),
        "control_separation": lambda d, m: control_separation_figure(results, d, m),
        "meta_consistency": lambda d, m: meta_consistency_figure(results, d, m),
    }
    return [
        ((name, str(dataset), str(model)), functools.partial(per_group[kind], dataset, model))
        for (dataset, model), _ in results.groupby(["dataset", "model"], sort=False)
    ]


def run_figures(data: RunData) -> Iterator[tuple[str, Figure]]:
    """Every figure of a run — the default ones and the suite's ``[[figures]]`` — with a
    file stem of its own: the name parts joined by ``_`` (:func:`file_stem`), and where
    two figures would share a stem (ids that differ only in separators or case, or
    whose joins coincide: ``a_b`` + ``c`` and ``a`` + ``b_c``), 12 hex digits of the
    SHA-256 of the parts appended to each. Figures are drawn as they are asked for (save
    and close each before the next)."""
    planned = [
        item
        for spec in default_figures(data) + list(data.config.get("figures", []))
        for item in draw(spec, data)
    ]
    stems = [file_stem("_".join(parts)) for parts, _ in planned]
    owners: dict[str, set[tuple[str, ...]]] = {}
    for stem, (parts, _) in zip(stems, planned, strict=True):
        owners.setdefault(stem.casefold(), set()).add(parts)
    for stem, (parts, drawing) in zip(stems, planned, strict=True):
        if len(owners[stem.casefold()]) > 1:
            stem += "-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
        figure = drawing()
        if figure is not None:
            yield stem, figure


def render_figures(out_dir: str | Path, run_id: str | None, to: Path | None) -> list[Path]:
    """The default figures and the suite's declared ``[[figures]]`` of a run (latest by
    default); returns the files written, to ``to`` or ``<out_dir>/figures/<run_id>/``."""
    with ResultsStore(out_dir, create=False) as store:
        data = load_run_data(store, store.run_with_cells(run_id)[0])
    folder = to or Path(out_dir) / "figures" / data.run_id
    written: list[Path] = []
    for stem, figure in run_figures(data):
        written += save(figure, folder, stem, data.run_id)
    return written
