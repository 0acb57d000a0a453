"""Suite files: TOML, validated before anything runs.

A suite names datasets × models × explainers × metrics × seeds and execution options.
Validation is two-step: the file's shape (pydantic, unknown keys rejected), then every
component name (registries) and its ``params`` (the component's own ``Params`` model).
All problems are collected and reported together, one line each, as
``FILE: key.path: problem; did you mean …``.
"""

from __future__ import annotations

import math
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness import sweeps
from harness.claims import ClaimSpec, claim_problems
from harness.component import SUITE_FOLDER, Component
from harness.datasets.explained_rows import ExplainSample
from harness.errors import HarnessError, did_you_mean
from harness.identifiers import Identifier
from harness.meta_consistency import META_SCORES, meta_score_id
from harness.records import RESULT_COLUMNS
from harness.registry import Registry
from harness.suite_messages import describe, name_claim

if TYPE_CHECKING:  # the registries are imported when a suite is resolved, not before
    from harness.datasets import DatasetSource
    from harness.explainers import Explainer
    from harness.metrics import Metric
    from harness.models import ModelRecipe

BUNDLED_SUITES = Path(__file__).parent / "suites"


class SuiteError(HarnessError):
    """A suite file that cannot be read or validated; one line per problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


#: A seed: an integer in [0, 2³²) — what numpy and torch accept (no boolean, no string).
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class ComponentSpec(_Strict):
    """One ``[[datasets]]``, ``[[models]]``, ``[[explainers]]`` or ``metrics`` entry.

    ``id`` (default: the name) labels the entry in cells, reports and files.
    """

    name: Identifier = Field(description="registered name, or 'package.module:Class'")
    id: Identifier | None = Field(
        None, description="the entry's id in cells, reports and files (default: the name)"
    )
    label: str | None = Field(
        None,
        min_length=1,
        max_length=60,
        description="display label in figures (e.g. 'Grad-CAM'; default: the id); a swept "
        "entry's label is followed by its swept values",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    explains: Identifier | None = Field(
        None,
        description="explainers: the id of a by-design explainer whose model this post-hoc "
        "explainer explains instead of the black-box twin",
    )
    explain_rows: int | dict[str, Any] | None = Field(
        None,
        description="explainers: test rows this explainer explains (default: "
        "execution.explain_rows); may be a sweep, { sweep = [50, 100] }",
    )
    #: set on entries generated from a sweep (:mod:`harness.sweeps`)
    _base: str | None = PrivateAttr(None)
    _swept: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def entry_id(self) -> str:
        """The entry's id: ``id``, else its name."""
        return self.id or self.name

    @property
    def base(self) -> str:
        """The id of the suite entry this one was generated from (its own id if none)."""
        return self._base or self.entry_id

    @property
    def swept(self) -> dict[str, Any]:
        """The swept parameters' values of a generated entry (empty otherwise)."""
        return dict(self._swept)


class ExecutionOptions(_Strict):
    """How cells are executed."""

    explain_rows: int = Field(
        200,
        ge=1,
        le=10_000_000,
        description="test rows explained per cell (N; which ones: explain_sample)",
    )
    explain_sample: ExplainSample = Field(
        "stratified",
        description="which N test rows are explained when N < the test rows: 'stratified' "
        "(a seeded sample with each class's share, every class present; the seed is the "
        "cell's data seed, so all explainers of a seed explain the same rows) or 'first' "
        "(the first N, e.g. a test split already in random order)",
    )
    target: str = Field(
        "prediction",
        max_length=20,
        description="explained class: the model's prediction, the true label, or 'class:K' "
        "(class index K for every image, e.g. the disease class)",
    )
    explain_classes: Literal["target", "all"] = Field(
        "target",
        description="'all': also explain every class (stored per class, for metrics that "
        "read the map of a given class, e.g. activation_consistency_neg)",
    )
    select_images: Literal["all", "predicted_positive", "correct_by_both"] = Field(
        "all",
        description="explained images that explanation metrics score: all; those "
        "predicted as class K (needs target = 'class:K'); or those the by-design model "
        "and its black-box twin both classify correctly (the Soft-CAM paper's set)",
    )
    validation_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="hold out this stratified share of each training split as a "
        "validation split (never trained on; metrics with split = 'validation' score it, "
        "e.g. to choose a penalty); None: no validation split",
    )
    data_seed: Seed | None = Field(
        None,
        description="generate and split every dataset with this seed, whatever the cell's "
        "seed (which then varies only the model's initialisation, batch order and the "
        "explainers' sampling); None: the cell's seed varies the data too",
    )
    design_reference: str | None = Field(
        None,
        description="select_images = 'correct_by_both': the by-design explainer whose model "
        "post-hoc cells use with the twin (default: the suite's first by-design explainer)",
    )

    @field_validator("threads", mode="before")
    @classmethod
    def _thread_setting(cls, threads: Any) -> Any:
        if threads is None or threads == "torch" or (type(threads) is int and 1 <= threads <= 4096):
            return threads
        raise ValueError(
            "not a thread setting; give a count from 1 to 4096, 'torch' (torch's default), "
            "or leave it out (the thread policy)"
        )

    @field_validator("target")
    @classmethod
    def _known_target(cls, target: str) -> str:
        if not re.fullmatch(r"prediction|label|class:[0-9]{1,6}", target):
            raise ValueError(
                f"'{target}' is not an explained class; use 'prediction', 'label' or "
                "'class:K' with K a class index, e.g. 'class:1'"
            )
        return target

    @model_validator(mode="after")
    def _selection_needs_its_class(self) -> ExecutionOptions:
        if self.select_images == "predicted_positive" and not self.target.startswith("class:"):
            raise ValueError(
                "select_images = 'predicted_positive' needs target = 'class:K' (K: the "
                "positive class)"
            )
        return self

    @property
    def target_class(self) -> int | None:
        """K of ``target = "class:K"``; None for prediction and label."""
        return int(self.target.split(":")[1]) if self.target.startswith("class:") else None

    device: str = Field(
        "cpu",
        pattern=r"^(cpu|auto|cuda(:\d{1,2})?)$",
        description="torch device: cpu, cuda, cuda:N (GPU N) or auto (CUDA when available)",
    )
    explain_batch: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="rows per explainer call (None: all explained rows at once); bounds "
        "an explainer's memory on large images",
    )
    threads: Annotated[int, Field(ge=1, le=4096)] | Literal["torch"] | None = Field(
        None,
        description="torch CPU threads per cell: a count; None: the thread policy (1 for "
        "tables and small images, the usable cores ÷ jobs for larger images; see "
        "harness.runner.threads); 'torch': torch's default (one per core)",
    )
    cell_timeout: float | None = Field(
        None,
        gt=0,
        le=31_536_000,
        description="seconds a cell may take before it is stopped and recorded "
        "as failed (None: no limit)",
    )


class MetaEvaluationSpec(_Strict):
    """MetaQuantus's tests of explanation metrics (``[meta_evaluation]``): each metric
    listed is scored per explained row again under minor (resilience) and disruptive
    (adversary) perturbations of the model and of the input — see
    :mod:`harness.meta_consistency` for the scores and
    :mod:`harness.runner.meta_perturbation` for the perturbations."""

    metrics: list[Identifier] = Field(
        default_factory=list,
        max_length=1000,
        description="ids of the suite's per-row explanation metrics to meta-evaluate "
        "(none: no meta-evaluation)",
    )
    explainers: list[Identifier] | None = Field(
        None,
        max_length=1000,
        description="ids of the post-hoc explainers whose maps are scored (None: all of "
        "them; each meta-evaluated explainer runs 4 × perturbations times more)",
    )
    perturbations: int = Field(
        3, ge=1, le=1000, description="perturbations per test (MetaQuantus's K)"
    )
    model_noise: float = Field(
        0.001,
        gt=0,
        le=100,
        description="model resilience: every parameter multiplied by N(1, σ²), σ this",
    )
    model_adversary: float = Field(
        2.0,
        gt=0,
        le=100,
        description="model adversary: every parameter multiplied by N(1, σ²), σ this",
    )
    input_noise: float = Field(
        0.001,
        gt=0,
        le=1000,
        description="input resilience: uniform noise of this half-width, in units of "
        "each input position's training standard deviation",
    )
    input_adversary: float = Field(
        5.0,
        gt=0,
        le=1000,
        description="input adversary: uniform noise of this half-width, in training "
        "standard deviations",
    )

    @field_validator("metrics")
    @classmethod
    def _distinct_metrics(cls, metrics: list[str]) -> list[str]:
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metrics repeat: {metrics}; list each metric once")
        return metrics


#: The kinds of figure a suite may declare (``figures`` and ``report`` draw them).
FigureKind = Literal[
    "metric",
    "runtime",
    "accuracy_localisation",
    "faithfulness",
    "gallery",
    "importance",
    "trajectory",
    "sweep",
    "precision_at_k",
    "patch_deletion",
    "randomisation",
    "control_separation",
    "meta_consistency",
]


class FigureSpec(_Strict):
    """One ``[[figures]]`` entry: a figure of the paper's set, drawn by ``xai-harness
    figures`` and ``report`` in addition to the defaults."""

    kind: FigureKind
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="output file stem (default: the kind)"
    )
    metric: str | None = Field(None, description="kind 'metric': the metric id to plot")
    datasets: list[str] = Field(default_factory=list, description="dataset ids (default all)")
    models: list[str] = Field(default_factory=list, description="model ids (default all)")
    explainers: list[str] = Field(default_factory=list, description="explainer ids (default all)")
    x: str | None = Field(None, description="kind 'sweep': the swept parameter on the x axis")
    hue: str | None = Field(None, description="kind 'sweep': a swept parameter drawn as colour")
    width: float | None = Field(
        None, ge=1, le=30, description="inches (3.5: one paper column, 7: two; default: by kind)"
    )
    height: float | None = Field(
        None, ge=1, le=30, description="inches (default: the kind's aspect at that width)"
    )
    dpi: int = Field(200, ge=50, le=1200, description="PNG resolution, dots per inch")
    font_size: float | None = Field(
        None,
        ge=4,
        le=24,
        description="points for body text, other text scaled alike (default: 8 at width "
        "≤ 4 in, else matplotlib's 10)",
    )
    sharey: bool = Field(False, description="one y-range for every panel of the figure")
    images: list[int] = Field(
        default_factory=list,
        description="kind 'gallery': the test rows to show (of those stored: every class "
        "in turn, 8 per cell)",
    )
    classes: list[str] = Field(
        default_factory=list, description="kind 'gallery': show images of these classes only"
    )

    @model_validator(mode="after")
    def _metric_for_metric_plots(self) -> FigureSpec:
        if self.kind == "metric" and self.metric is None:
            raise ValueError("kind 'metric' needs `metric` (a metric id of this suite)")
        return self


class SuiteSpec(_Strict):
    """The suite file's schema."""

    name: Identifier
    description: str = ""
    version: int = Field(1, ge=1, le=1_000_000, description="bump when the suite's meaning changes")
    seeds: list[Seed] = Field(min_length=1, max_length=10_000)
    metrics: list[ComponentSpec] = Field(min_length=1)
    datasets: list[ComponentSpec] = Field(min_length=1)
    models: list[ComponentSpec] = Field(min_length=1)
    explainers: list[ComponentSpec] = Field(min_length=1)
    execution: ExecutionOptions = ExecutionOptions()
    figures: list[FigureSpec] = Field(default_factory=list)
    claims: list[ClaimSpec] = Field(default_factory=list)
    meta_evaluation: MetaEvaluationSpec = MetaEvaluationSpec()

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_names_as_tables(cls, value: Any) -> Any:
        """``metrics = ["accuracy", {name = "spearman_gt", params = {…}}]``: both forms."""
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}; list each seed once")
        return seeds


C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Resolved(Generic[C]):
    """A suite entry bound to its component instance (validated parameters)."""

    id: str
    component: C
    #: the id of the suite entry it was generated from, and its swept values (sweeps)
    base: str = ""
    swept: dict[str, Any] = field(default_factory=dict)
    #: explainers: the by-design explainer whose model this one explains (None: the twin)
    explains: str | None = None
    #: explainers: the rows it explains, when not ``execution.explain_rows``
    explain_rows: int | None = None
    #: the display label of figures (None: the id)
    label: str | None = None

    @property
    def name(self) -> str:
        return self.component.name


@dataclass(frozen=True)
class Suite:
    """A validated suite: its spec, source text and resolved components."""

    spec: SuiteSpec
    path: Path | None
    text: str
    datasets: list[Resolved[DatasetSource]]
    models: list[Resolved[ModelRecipe]]
    explainers: list[Resolved[Explainer]]
    metrics: list[Resolved[Metric]]

    @property
    def name(self) -> str:
        return self.spec.name

    def explainer(self, explainer_id: str) -> Resolved[Explainer]:
        """The explainer of this suite with that id."""
        return next(e for e in self.explainers if e.id == explainer_id)

    @property
    def design_reference(self) -> Resolved[Explainer] | None:
        """The by-design explainer whose model, with its twin, defines the images that
        ``select_images = "correct_by_both"`` scores for post-hoc cells."""
        wanted = self.spec.execution.design_reference
        by_design = [e for e in self.explainers if e.component.by_design]
        chosen = [e for e in by_design if wanted is None or e.id == wanted]
        return chosen[0] if chosen else None

    def resolved_config(self) -> dict[str, Any]:
        """The suite with every parameter default filled in (stored with each run)."""

        def entries(items: list[Resolved[Any]]) -> list[dict[str, Any]]:
            return [
                {"id": r.id, "name": r.name, "params": r.component.config()}
                | ({"sweep": {"base": r.base, "values": r.swept}} if r.swept else {})
                | ({"explains": r.explains} if getattr(r, "explains", None) else {})
                | ({"explain_rows": r.explain_rows} if getattr(r, "explain_rows", None) else {})
                | ({"label": r.label} if r.label else {})
                for r in items
            ]

        return {
            "name": self.spec.name,
            "description": self.spec.description,
            "version": self.spec.version,
            "seeds": self.spec.seeds,
            "execution": self.spec.execution.model_dump(mode="json"),
            "datasets": entries(self.datasets),
            "models": entries(self.models),
            "explainers": entries(self.explainers),
            "metrics": entries(self.metrics),
            "figures": [f.model_dump(mode="json") for f in self.spec.figures],
            "claims": [c.model_dump(mode="json") for c in self.spec.claims],
        }


def bundled_suites() -> dict[str, Path]:
    """Suites shipped with the package, by name (file stem)."""
    return {path.stem: path for path in sorted(BUNDLED_SUITES.glob("*.toml"))}


def find_suite(reference: str | Path) -> Path:
    """A suite path as given, or the bundled suite of that name (``quick``)."""
    path = Path(reference)
    if path.is_file():
        return path
    bundled = bundled_suites()
    if str(reference) in bundled:
        return bundled[str(reference)]
    if path.suffix == ".toml" or path.parent != Path("."):
        raise SuiteError(f"suite file '{path}' not found; check the path")
    raise SuiteError(
        f"no suite file or bundled suite named '{reference}'"
        f"{did_you_mean(str(reference), bundled)} Bundled suites: {', '.join(bundled)}"
    )


def _read(reference: str | Path) -> tuple[str, Path]:
    path = find_suite(reference)
    try:
        return path.read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read suite file: {exc}") from exc


def load_suite(reference: str | Path, *, seeds: list[int] | None = None) -> Suite:
    """Read, validate and resolve a suite given by path or bundled name.

    ``seeds`` replaces the suite's seeds. The suite's folder is appended to ``sys.path``
    so ``"module:Class"`` names can refer to plugins next to the suite file (appended, so
    a file there named like a library — ``shap.py`` — cannot shadow it). A suite that
    names ``module:Class`` runs that module's code, like a ``conftest.py``.
    """
    text, path = _read(reference)
    return parse_suite(text, path=path, seeds=seeds)


def read_spec(reference: str | Path) -> tuple[SuiteSpec, Path]:
    """A suite's validated spec and path, without resolving its components: its shape,
    ids, claims and figures are checked; names and parameters are not (and no plugin is
    imported). Enough to list a suite or to check its claims against a stored run."""
    text, path = _read(reference)
    spec = _parse_spec(text, str(path), None)
    problems = _id_problems(spec)
    if problems:
        raise SuiteError("\n".join(f"{path}: {line}" for line in problems))
    return spec, path


def _parse_spec(text: str, where: str, seeds: list[int] | None) -> SuiteSpec:
    """The file's TOML and shape (pydantic): one line per problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{where}: TOML syntax error: {exc}") from exc
    if seeds is not None:
        data["seeds"] = seeds
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(
            "\n".join(f"{where}: {name_claim(line, data)}" for line in describe(exc, SuiteSpec))
        ) from None
    return _expanded(spec, where)


#: Result columns a swept parameter may not be named like (they would clash): every
#: column of the results frame, and the sweep's base-id columns.
_RESERVED_COLUMNS = frozenset(RESULT_COLUMNS) | frozenset(sweeps.SWEEP_BASE_COLUMNS)


#: The entry key of explainers that may be swept like a parameter.
EXPLAIN_ROWS = "explain_rows"


def _explain_rows_problems(entry: ComponentSpec, section: str, where: str) -> list[str]:
    """``explain_rows`` only on explainers: a positive number or a sweep of them."""
    value = entry.explain_rows
    if value is None:
        return []
    if section != "explainers":
        return [f"{where}.explain_rows: only explainers take explain_rows"]
    values = value.get(sweeps.SWEEP) if isinstance(value, dict) else [value]
    if not isinstance(values, list) or not (sweeps.is_sweep(value) or not isinstance(value, dict)):
        return [f"{where}.explain_rows: give a number of rows or {{ sweep = [50, 100] }}"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**7 for v in values):
        return [
            f"{where}.explain_rows: rows must be whole numbers from 1 to 10,000,000 (got {values})"
        ]
    return []


def _planned_cells(spec: SuiteSpec) -> dict[str, int]:
    """Entries per section after expansion (sweeps counted, nothing expanded) and seeds."""
    counts = {"seeds": len(spec.seeds)}
    for section in ("datasets", "models", "explainers"):
        counts[section] = 0
        for entry in getattr(spec, section):
            params = dict(entry.params)
            if entry.explain_rows is not None:
                params[EXPLAIN_ROWS] = entry.explain_rows
            counts[section] += sweeps.expansion_size(params)
    return counts


def _expanded(spec: SuiteSpec, where: str) -> SuiteSpec:
    """``spec`` with every swept entry replaced by the entries it expands into — once
    the number of cells it would plan is known to be within :data:`sweeps.MAX_CELLS`."""
    counts = _planned_cells(spec)
    cells = math.prod(counts.values())
    if cells > sweeps.MAX_CELLS:
        factors = " × ".join(f"{n:,} {section}" for section, n in counts.items())
        raise SuiteError(
            f"{where}: the suite plans {cells:,} cells ({factors}), over the budget of "
            f"{sweeps.MAX_CELLS:,}; sweep fewer values, or split it into several suites"
        )
    problems: list[str] = []
    sections: dict[str, list[ComponentSpec]] = {}
    swept_by: dict[str, str] = {}
    for section in ("datasets", "models", "explainers", "metrics"):
        sections[section] = []
        for index, entry in enumerate(getattr(spec, section)):
            key = f"{section}[{index}].params"
            rows = _explain_rows_problems(entry, section, f"{section}[{index}]")
            problems += rows
            # explain_rows sweeps like a parameter (it is taken out again below)
            params = dict(entry.params)
            if entry.explain_rows is not None and not rows:
                params[EXPLAIN_ROWS] = entry.explain_rows
            found = sweeps.sweep_problems(params)
            problems += [f"{key}.{line}" for line in found]
            swept = [k for k, v in params.items() if sweeps.is_sweep(v)]
            if swept and section == "metrics":
                problems.append(
                    f"{key}.{swept[0]}: metrics cannot be swept; list one "
                    "entry per setting, each with its own id"
                )
                continue
            for name in swept:
                if name in _RESERVED_COLUMNS:
                    problems.append(
                        f"{key}.{name}: a swept parameter may not be named like a result column"
                    )
                if swept_by.setdefault(name, section) != section:
                    problems.append(
                        f"{key}.{name}: also swept in [{swept_by[name]}]; a "
                        "parameter name may be swept in one section only"
                    )
            if found or not swept:
                sections[section].append(entry)
                continue
            if sweeps.expansion_size(params) > sweeps.MAX_EXPANSION:
                problems.append(
                    f"{key}: the sweeps expand into more than {sweeps.MAX_EXPANSION} entries"
                )
                continue
            for label, concrete, values in sweeps.expand(entry.entry_id, params):
                rows_value = concrete.pop(EXPLAIN_ROWS, None)
                try:
                    generated = ComponentSpec(
                        name=entry.name,
                        id=label,
                        params=concrete,
                        explains=entry.explains,
                        explain_rows=rows_value,
                        label=entry.label,
                    )
                except ValidationError:
                    problems.append(
                        f"{section}[{index}]: the generated id '{label[:120]}' is "
                        "not a valid id (at most 100 characters, no '/'); give "
                        "the entry a shorter id or sweep fewer values"
                    )
                    break
                generated._base, generated._swept = entry.entry_id, values
                sections[section].append(generated)
    if problems:
        raise SuiteError("\n".join(f"{where}: {line}" for line in problems))
    return spec.model_copy(update=sections)


#: The sections of a suite that name components, in resolution order.
SECTIONS = ("datasets", "models", "explainers", "metrics")


def _id_problems(spec: SuiteSpec) -> list[str]:
    """Ids used twice in a section or by two claims, and claims or figures naming an id
    the suite does not have."""
    problems: list[str] = []
    labels: dict[str, list[str]] = {}
    for section in SECTIONS:
        labels[section] = []
        seen: set[str] = set()
        for index, entry in enumerate(getattr(spec, section)):
            if entry.entry_id in seen:
                problems.append(
                    f"{section}[{index}]: id '{entry.entry_id}' is used twice in [{section}]; "
                    "give each entry a distinct `id`"
                )
            seen.add(entry.entry_id)
            labels[section].append(entry.entry_id)

    def with_bases(section: str) -> list[str]:  # a sweep's base id selects all its entries
        bases = [e.base for e in getattr(spec, section) if e.base != e.entry_id]
        return labels[section] + list(dict.fromkeys(bases))

    swept = sorted({k for s in SECTIONS for e in getattr(spec, s) for k in e.swept})
    meta = [meta_score_id(m, which) for m in spec.meta_evaluation.metrics for which in META_SCORES]
    claim_ids = {
        "metric": labels["metrics"] + meta,
        "explainer": with_bases("explainers"),
        "dataset": with_bases("datasets"),
        "model": with_bases("models"),
        "swept": swept,
    }
    seen_claims: set[str] = set()
    for index, claim in enumerate(spec.claims):
        where_claim = f"claims[{index}] (id '{claim.id}')"
        if claim.id in seen_claims:
            problems.append(f"{where_claim}: the id is used twice; give each claim its own id")
        seen_claims.add(claim.id)
        problems += [f"{where_claim}.{line}" for line in claim_problems(claim, claim_ids)]
    figure_ids = {
        "metric": labels["metrics"],
        "datasets": with_bases("datasets"),
        "models": with_bases("models"),
        "explainers": with_bases("explainers"),
    }
    for index, figure in enumerate(spec.figures):
        for key in ("x", "hue"):
            wanted = getattr(figure, key)
            if wanted is not None and wanted not in swept:
                problems.append(
                    f"figures[{index}].{key}: '{wanted}' is not a swept parameter of this "
                    f"suite{did_you_mean(wanted, swept)} Swept: {', '.join(swept) or 'none'}"
                )
        for key, known in figure_ids.items():
            wanted = getattr(figure, key)
            for name in [wanted] if isinstance(wanted, str) else wanted or []:
                if name not in known:
                    problems.append(
                        f"figures[{index}].{key}: '{name}' is not a {key.rstrip('s')} id of this "
                        f"suite{did_you_mean(name, known)} Known: {', '.join(known)}"
                    )
    return problems


def parse_suite(text: str, *, path: Path | None = None, seeds: list[int] | None = None) -> Suite:
    """Validate suite TOML ``text``; ``path`` is used in messages and for local plugins."""
    from harness.datasets import dataset_registry
    from harness.explainers import explainer_registry
    from harness.metrics import metric_registry
    from harness.models import model_registry

    where = str(path) if path else "<suite>"
    spec = _parse_spec(text, where, seeds)
    if path is not None and str(path.parent.resolve()) not in sys.path:
        sys.path.append(str(path.parent.resolve()))  # after the libraries: no shadowing

    folder = path.parent.resolve() if path is not None else None
    problems = _id_problems(spec)
    registries: dict[str, Registry[Any]] = {
        "datasets": dataset_registry,
        "models": model_registry,
        "explainers": explainer_registry,
        "metrics": metric_registry,
    }
    sections: dict[str, list[Resolved[Any]]] = {}
    for section in SECTIONS:
        sections[section] = []
        for index, entry in enumerate(getattr(spec, section)):
            resolved = _resolve(entry, registries[section], f"{section}[{index}]", problems, folder)
            if resolved is not None:
                sections[section].append(resolved)
    explainer_ids = [e.entry_id for e in spec.explainers]
    for index, metric in enumerate(sections["metrics"]):
        for reference in metric.component.references():
            if reference not in explainer_ids:
                problems.append(
                    f"metrics[{index}].params.reference: '{reference}' is not an explainer id "
                    f"of this suite{did_you_mean(reference, explainer_ids)} "
                    f"Explainer ids: {', '.join(explainer_ids)}"
                )
    problems += _selection_problems(spec.execution, sections["explainers"])
    problems += _explains_problems(spec, sections["explainers"])
    problems += _meta_evaluation_problems(
        spec.meta_evaluation, sections["metrics"], sections["explainers"]
    )
    if problems:
        raise SuiteError("\n".join(f"{where}: {line}" for line in problems))
    return Suite(
        spec=spec,
        path=path,
        text=text,
        datasets=sections["datasets"],
        models=sections["models"],
        explainers=sections["explainers"],
        metrics=sections["metrics"],
    )


def _meta_evaluation_problems(
    meta: MetaEvaluationSpec, metrics: list[Resolved[Any]], explainers: list[Resolved[Any]]
) -> list[str]:
    """Each meta-evaluated metric: a metric of the suite scoring the explained rows one by
    one (it reads their maps), not an across-seeds statistic; each explainer listed: a
    post-hoc explainer of the suite."""
    problems = []
    post_hoc = [e.id for e in explainers if e.component.role() == "post_hoc"]
    for index, wanted in enumerate(meta.explainers or []):
        if wanted not in post_hoc:
            problems.append(
                f"meta_evaluation.explainers[{index}]: '{wanted}' is not a post-hoc explainer "
                f"id of this suite{did_you_mean(wanted, post_hoc)} Post-hoc explainers: "
                f"{', '.join(post_hoc) or 'none'}"
            )
    by_id = {m.id: m.component for m in metrics}
    for index, wanted in enumerate(meta.metrics):
        where = f"meta_evaluation.metrics[{index}]"
        metric = by_id.get(wanted)
        if metric is None:
            problems.append(
                f"{where}: '{wanted}' is not a metric id of this suite"
                f"{did_you_mean(wanted, list(by_id))} Metric ids: {', '.join(by_id)}"
            )
        elif "attributions" not in metric.needs or metric.across_seeds:
            problems.append(
                f"{where}: '{wanted}' does not score the explained rows' maps one by one, so "
                "it has no per-row values to meta-evaluate; list a metric that reads the "
                "maps (e.g. pointing_game, deletion_auc)"
            )
    return problems


def _explains_problems(spec: SuiteSpec, explainers: list[Resolved[Any]]) -> list[str]:
    """``explains`` only on post-hoc explainers, naming a by-design explainer."""
    problems = []
    by_design = [e.id for e in explainers if e.component.by_design]
    for section in ("datasets", "models", "metrics"):
        for index, entry in enumerate(getattr(spec, section)):
            if entry.explains is not None:
                problems.append(f"{section}[{index}].explains: only explainers explain a model")
    for index, explainer in enumerate(explainers):
        wanted = explainer.explains
        if wanted is None:
            continue
        if explainer.component.by_design:
            problems.append(
                f"explainers[{index}].explains: '{explainer.id}' is by design; it "
                "explains its own model"
            )
        elif wanted not in by_design:
            problems.append(
                f"explainers[{index}].explains: '{wanted}' is not a by-design explainer id of "
                f"this suite{did_you_mean(wanted, by_design)} By-design explainers: "
                f"{', '.join(by_design) or 'none'}"
            )
    return problems


def _selection_problems(options: ExecutionOptions, explainers: list[Resolved[Any]]) -> list[str]:
    """``correct_by_both`` needs a by-design explainer; ``design_reference`` must name one."""
    by_design = [e.id for e in explainers if e.component.by_design]
    reference = options.design_reference
    if reference is not None and reference not in by_design:
        return [
            f"execution.design_reference: '{reference}' is not a by-design explainer id of "
            f"this suite{did_you_mean(reference, by_design)} By-design explainers: "
            f"{', '.join(by_design) or 'none'}"
        ]
    if options.select_images == "correct_by_both" and not by_design:
        return [
            "execution.select_images: 'correct_by_both' needs a by-design explainer (e.g. "
            "softcam) in the suite; use 'all' or add one"
        ]
    return []


def _resolve(
    entry: ComponentSpec,
    registry: Registry[Any],
    key: str,
    problems: list[str],
    folder: Path | None,
) -> Resolved[Any] | None:
    try:
        cls = registry.get(entry.name)
    except HarnessError as exc:
        problems.append(f"{key}.name: {exc}")
        return None
    try:
        params = cls.Params.model_validate(entry.params, context={SUITE_FOLDER: folder})
    except ValidationError as exc:
        for line in describe(exc, cls.Params, prefix=f"{key}.params", owner=(registry, cls)):
            problems.append(line)
        return None
    component = cls(params)
    problems += [f"{key}.params.{problem}" for problem in component.input_problems()]
    return Resolved(
        id=entry.entry_id,
        component=component,
        base=entry.base,
        swept=entry.swept,
        explains=entry.explains,
        explain_rows=entry.explain_rows,  # type: ignore[arg-type]
        label=entry.label,
    )
