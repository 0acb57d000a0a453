"""Reading a user's torch model files without unpickling anything untrusted.

- ``torch.export`` programs (``.pt2``): ``torch.export.load`` unpickles some members of
  the archive (pickled weights and constants, sample inputs, legacy ``.pt`` members —
  retrying some with ``weights_only=False``), Python objects with plain ``pickle``, and
  loads compiled AOTInductor libraries. Its zip reader finds members case-insensitively.
  :func:`check_exported_program` therefore refuses, unread, any archive that is not
  exactly what ``torch.export.save`` writes: one root folder, every member name from a
  fixed list (no aliases: ``./``, case, duplicates; no Python objects, no libraries), every
  payload a ``weight_N``/``tensor_N`` of its folder; the members torch unpickles are read
  through torch's own reader (so its lookup rules apply) and opened with
  ``torch.load(weights_only=True)``, which builds tensors and plain containers only. Then
  :func:`load_exported_program` calls ``torch.export.load`` with every ``torch.load``
  forced to ``weights_only`` and plain unpickling disabled: a second wall, should a future
  torch read a member the list does not know.
- TorchScript (``torch.jit.load``): read by torch's own C++ loader, which builds
  tensors and TorchScript values only; a pickle is not a TorchScript archive. PyTorch
  deprecates TorchScript (2.14 warns); prefer ``torch.export``.
- State dicts: ``torch.load(weights_only=True)``, or safetensors.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

#: The members ``torch.export.save`` writes, below the archive's root folder.
_EXPORT_MEMBERS = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/(?P<model>\w+)\.json|data/sample_inputs/\w+\.pt"
    r"|data/weights/\w+_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/\w+_constants_config\.json|data/constants/tensor_\d+"
    r"|extra/[\w.-]+"
)
#: torch's loggers that report (with tracebacks) a failure it then raises anyway.
_TORCH_EXPORT_LOGGERS = ("torch.export", "torch._export")
#: What a payload entry of a weights or constants configuration may name, per folder.
_PAYLOAD_NAMES = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}


def _refused(path: Path, why: str) -> ValueError:
    return ValueError(
        f"{path}: refused, {why}; the file may run code when loaded — save the model with "
        "torch.export.save(torch.export.export(model, …), path)"
    )


def _export_member_names(path: Path) -> list[str]:
    """The archive's member names below its one root folder, each from the list of what
    ``torch.export.save`` writes; duplicates and names that differ only in case refused."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a torch.export archive (a pickle is never loaded: it can run any "
            "code); save the model with torch.export.save(torch.export.export(model, …), path)"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    folded = [name.casefold() for name in names]
    if len(set(folded)) != len(names):
        twice = next(n for n, f in zip(names, folded, strict=True) if folded.count(f) > 1)
        raise _refused(path, f"member {twice!r} is present twice (or again in other case)")
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or not all("/" in name for name in names):
        raise _refused(path, "its members are not all in one root folder")
    members = [name.split("/", 1)[1] for name in names]
    for member in members:
        if not _EXPORT_MEMBERS.fullmatch(member):
            raise _refused(path, f"member {member!r} is not one that torch.export.save writes")
    return members


def check_exported_program(path: Path) -> None:
    """Raise ``ValueError`` (naming the file and member) unless ``path`` is a
    ``torch.export`` archive of the form ``torch.export.save`` writes whose every member
    that ``torch.export.load`` would unpickle holds tensors and plain containers only."""
    members = _export_member_names(path)
    try:
        reader = torch._C.PyTorchFileReader(str(path))  # torch's own lookup rules
    except RuntimeError as error:
        raise _refused(path, f"torch cannot read it as an archive ({error})") from error
    if sorted(reader.get_all_records()) != sorted(members):
        raise _refused(path, "torch's reader and the zip directory disagree on its members")
    unpickled = [m for m in members if m.startswith("data/sample_inputs/")]
    for config in (m for m in members if m.endswith("_config.json")):
        folder = config.split("/")[1]
        try:
            entries = json.loads(reader.get_record(config))["config"].values()
            named = [(str(e["path_name"]), bool(e.get("use_pickle"))) for e in entries]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise _refused(path, f"member {config!r} is not a payload list") from error
        for name, pickled in named:
            if not _PAYLOAD_NAMES[folder].fullmatch(name):
                why = "not a tensor file of its folder (a Python object?)"
                raise _refused(path, f"member {config!r} names payload {name!r}: {why}")
            if f"data/{folder}/{name}" not in members:
                raise _refused(path, f"member {config!r} names payload {name!r}: not in it")
            if pickled:
                unpickled.append(f"data/{folder}/{name}")
    for member in unpickled:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.load(io.BytesIO(reader.get_record(member)), weights_only=True)
        except Exception as error:
            raise _refused(
                path, f"member {member} is not plain tensors ({type(error).__name__})"
            ) from error


class _NoUnpickling:
    """Stands for the ``pickle`` module (and torch's object unpickler) while an archive
    is loaded: every load is refused."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    @staticmethod
    def loads(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the archive holds a pickled Python object (refused)")


@contextmanager
def _weights_only_loading() -> Iterator[None]:
    """Every ``torch.load`` weights-only (torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``),
    plain unpickling in torch's archive reader refused and torch's export loggers quiet,
    for the duration."""
    from torch.export.pt2_archive import _package

    quiet = [logging.getLogger(name) for name in _TORCH_EXPORT_LOGGERS]
    saved_levels = [logger.level for logger in quiet]
    for logger in quiet:  # torch logs tracebacks of what it then raises (ours is one line)
        logger.setLevel(logging.CRITICAL + 1)
    saved_env = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    saved_pickle = _package.pickle
    saved_object_loader = getattr(torch._C, "_pickle_load_obj", None)
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    _package.pickle = _NoUnpickling(saved_pickle)  # type: ignore[assignment]
    if saved_object_loader is not None:
        torch._C._pickle_load_obj = _NoUnpickling.loads
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = saved_env
        _package.pickle = saved_pickle
        if saved_object_loader is not None:
            torch._C._pickle_load_obj = saved_object_loader
        for logger, level in zip(quiet, saved_levels, strict=True):
            logger.setLevel(level)


def load_exported_program(path: Path) -> torch.export.ExportedProgram:
    """The program in ``path``, after :func:`check_exported_program`, read with
    unpickling refused."""
    check_exported_program(path)
    try:
        with _weights_only_loading():
            return torch.export.load(str(path))
    except Exception as error:
        raise ValueError(f"{path}: cannot read the exported program ({error})") from error


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The TorchScript module in ``path``, on the CPU."""
    try:
        with warnings.catch_warnings():  # deprecated by PyTorch (README: prefer torch.export)
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise ValueError(
            f"{path}: not a TorchScript archive ({str(error).splitlines()[0][:120]}); save "
            "the model with torch.jit.save(torch.jit.script(model), path)"
        ) from error


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: a ``.safetensors`` file, or one written by
    ``torch.save`` read with ``torch.load(weights_only=True)`` (a checkpoint that nests it
    under ``state_dict`` is unwrapped). Raises ``ValueError`` naming the file otherwise."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            with warnings.catch_warnings():  # a note on pickle protocols, before a refusal
                warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a bad or refused file
        raise ValueError(
            f"{path}: cannot read weights ({type(error).__name__}); expected a .safetensors "
            "file or one written by torch.save(network.state_dict()) — a pickled model is "
            "never loaded"
        ) from error
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return dict(state)
