"""Crafted ``torch.export`` archives (``.pt2``) never run planted code: the four forms
that got past the old member check (a ``./`` alias, a member in other case, a member
present twice, a ``.PT`` suffix), and a fuzz of random names, aliases and duplicates
around a planted pickle."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from harness.models.torch_files import _weights_only_loading, load_exported_program

ROOT = "model"
WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
SAMPLE_INPUTS = "data/sample_inputs/model.pt"
_counter = itertools.count()


class _Planted:
    """Unpickling this touches ``path``: the marker that planted code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, bytes]:
    """The members (below the root folder) of a genuine archive of a small network."""
    network = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    program = torch.export.export(network, (torch.zeros(4, 6),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
    path = tmp_path_factory.mktemp("genuine") / f"{ROOT}.pt2"
    torch.export.save(program, path)
    with zipfile.ZipFile(path) as archive:
        return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}


def _planted(marker: Path, form: str) -> bytes:
    if form == "raw":
        return pickle.dumps(_Planted(marker))
    buffer = io.BytesIO()
    torch.save(_Planted(marker), buffer)
    return buffer.getvalue()


def _write(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names: the point here
        for name, data in entries:
            archive.writestr(name, data)
    return path


def _with_pickled_weight(members: dict[str, bytes], path_name: str) -> dict[str, bytes]:
    """The members with weight 0 marked ``use_pickle`` under ``path_name``."""
    config = json.loads(members[WEIGHTS_CONFIG])
    first = next(iter(config["config"].values()))
    first["path_name"], first["use_pickle"] = path_name, True
    return {**members, WEIGHTS_CONFIG: json.dumps(config).encode()}


def _attempt(path: Path) -> None:
    with contextlib.suppress(ValueError):  # refused or unreadable: only that nothing ran
        load_exported_program(path)


def _second_wall_only(path: Path) -> None:
    """torch.export.load with unpickling refused, without the member check first."""
    with contextlib.suppress(Exception), _weights_only_loading():
        torch.export.load(str(path))


def _unguarded(path: Path) -> None:
    """What torch alone does with the file (the control: the attack is real)."""
    with contextlib.suppress(Exception):
        torch.export.load(str(path))


def _four_forms(members: dict[str, bytes], marker: Path) -> dict[str, list[tuple[str, bytes]]]:
    evil = _planted(marker, "torch")
    dotted = _with_pickled_weight(members, "./weight_0")
    cased = _with_pickled_weight(members, "weight_0")
    return {
        "dot-slash alias": [(f"{ROOT}/{n}", d) for n, d in dotted.items()]
        + [(f"{ROOT}/data/weights/./weight_0", evil)],
        "other case": [(f"{ROOT}/{n}", d) for n, d in cased.items() if n != "data/weights/weight_0"]
        + [(f"{ROOT}/data/weights/WEIGHT_0", evil)],
        "present twice": [(f"{ROOT}/data/weights/weight_0", evil)]
        + [(f"{ROOT}/{n}", d) for n, d in cased.items()],
        "suffix case": [(f"{ROOT}/{n}", d) for n, d in members.items() if n != SAMPLE_INPUTS]
        + [(f"{ROOT}/data/sample_inputs/model.PT", _planted(marker, "raw"))],
    }


@pytest.mark.parametrize("form", ["dot-slash alias", "other case", "present twice", "suffix case"])
def test_the_four_known_forms_are_refused_and_never_run(form, members, tmp_path):
    marker = tmp_path / "planted code ran"
    path = _write(tmp_path / "m.pt2", _four_forms(members, marker)[form])
    with pytest.raises(ValueError, match=r"m\.pt2: refused"):
        load_exported_program(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_known_forms_do_run_planted_code_in_torch_alone(members, tmp_path):
    """The control: torch.export.load by itself runs the planted code of each form — so
    the refusals above are what protects."""
    for form in ("dot-slash alias", "other case", "present twice", "suffix case"):
        marker = tmp_path / f"ran {form}"
        _unguarded(_write(tmp_path / "m.pt2", _four_forms(members, marker)[form]))
        assert marker.exists(), form


def test_a_genuine_archive_still_loads(members, tmp_path):
    path = _write(tmp_path / "m.pt2", [(f"{ROOT}/{n}", d) for n, d in members.items()])
    program = load_exported_program(path)
    assert program.module()(torch.zeros(3, 6)).shape == (3, 2)


# -- the fuzz ---------------------------------------------------------------------------

_PLACES = ["weights", "constants", "sample_inputs", "legacy_weights", "custom_obj", "opaque_obj",
           "aoti", "extra"]  # fmt: skip


def _alias(name: str, how: str) -> str:
    """``name`` as an attacker might spell it so that one reader or another finds it."""
    folder, _, leaf = name.rpartition("/")
    return {
        "same": name,
        "upper": name.upper(),
        "leaf_upper": f"{folder}/{leaf.upper()}",
        "dot": f"{folder}/./{leaf}",
        "double_slash": f"{folder}//{leaf}",
        "parent": f"{folder}/../{folder.rsplit('/', 1)[-1]}/{leaf}",
        "backslash": f"{folder}\\{leaf}",
        "trailing_space": f"{name} ",
        "suffix_upper": name[:-3] + ".PT" if name.endswith(".pt") else name + ".PT",
    }[how]


_ALIASES = ["same", "upper", "leaf_upper", "dot", "double_slash", "parent", "backslash",
            "trailing_space", "suffix_upper"]  # fmt: skip


@st.composite
def crafted(draw) -> dict:
    return {
        "place": draw(st.sampled_from(_PLACES)),
        "member_alias": draw(st.sampled_from(_ALIASES)),
        "config_alias": draw(st.sampled_from(_ALIASES)),
        "duplicate": draw(st.sampled_from(["none", "evil_first", "evil_last"])),
        "form": draw(st.sampled_from(["raw", "torch"])),
        "root": draw(st.sampled_from([ROOT, ROOT.upper(), "other", "."])),
        "junk": draw(st.lists(st.text("abcxyz_./\\", min_size=1, max_size=12), max_size=2)),
    }


def _crafted_entries(
    members: dict[str, bytes], plan: dict, marker: Path
) -> list[tuple[str, bytes]]:
    evil = _planted(marker, plan["form"])
    kept = dict(members)
    target = {
        "weights": "data/weights/weight_0",
        "constants": "data/constants/tensor_0",
        "sample_inputs": SAMPLE_INPUTS,
        "legacy_weights": "data/weights/model.pt",
        "custom_obj": "data/constants/custom_obj_0",
        "opaque_obj": "data/constants/opaque_obj_0",
        "aoti": "data/aotinductor/model/model.so",
        "extra": "extra/notes.pt",
    }[plan["place"]]
    if plan["place"] in ("weights", "constants", "custom_obj", "opaque_obj"):
        folder, config_name = ("weights", WEIGHTS_CONFIG) if plan["place"] == "weights" else (
            "constants", CONSTANTS_CONFIG)  # fmt: skip
        config = json.loads(kept[config_name])
        leaf = _alias(target, plan["config_alias"]).split(f"data/{folder}/", 1)[-1]
        entry = {"path_name": leaf, "is_param": False, "use_pickle": True, "tensor_meta": None}
        if folder == "weights":
            config["config"][next(iter(config["config"]))] = {**entry, "is_param": True}
        else:
            config["config"]["planted"] = entry
        kept[config_name] = json.dumps(config).encode()
    planted_name = _alias(target, plan["member_alias"])
    entries = [(f"{plan['root']}/{n}", d) for n, d in kept.items() if n != planted_name]
    evil_entry = (f"{plan['root']}/{planted_name}", evil)
    if plan["duplicate"] == "none":
        entries.append(evil_entry)
    else:
        genuine = (evil_entry[0], kept.get(planted_name, b"\x00" * 8))
        pair = [evil_entry, genuine] if plan["duplicate"] == "evil_first" else [genuine, evil_entry]
        entries.extend(pair)
    entries.extend((f"{plan['root']}/{junk}", evil) for junk in plan["junk"])
    return entries


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(plan=crafted())
def test_no_crafted_archive_runs_planted_code(members, tmp_path_factory, plan):
    folder = tmp_path_factory.getbasetemp() / "fuzz"
    folder.mkdir(exist_ok=True)
    marker = folder / f"ran {next(_counter)}"
    path = _write(folder / f"{next(_counter)}.pt2", _crafted_entries(members, plan, marker))
    _attempt(path)
    assert not marker.exists(), plan
    _second_wall_only(path)  # each wall holds by itself
    assert not marker.exists(), plan
    path.unlink()


def test_an_unreadable_program_is_one_line_without_torch_tracebacks(members, tmp_path, capfd):
    damaged = {**members, "data/weights/weight_0": members["data/weights/weight_0"][:8]}
    path = _write(tmp_path / "m.pt2", [(f"{ROOT}/{n}", d) for n, d in damaged.items()])
    with pytest.raises(ValueError, match=r"m\.pt2: cannot read the exported program"):
        load_exported_program(path)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Logging error" not in captured.err, captured.err
