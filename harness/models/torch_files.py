"""Reading a user's torch model files without unpickling anything untrusted.

- ``torch.export`` programs (``.pt2``): ``torch.export.load`` unpickles some members of
  the archive with ``weights_only=False`` (pickled weights and constants, sample inputs,
  legacy ``.pt`` members) and Python objects with plain ``pickle``. Before it is called,
  :func:`check_exported_program` opens every such member with
  ``torch.load(weights_only=True)`` — which builds tensors and plain containers only and
  refuses anything else without running it — and refuses archives holding Python
  objects. A member that passes holds nothing the full unpickler could run.
- TorchScript (``torch.jit.load``): read by torch's own C++ loader, which builds
  tensors and TorchScript values only; a pickle is not a TorchScript archive. PyTorch
  deprecates TorchScript (2.14 warns); prefer ``torch.export``.
- State dicts: ``torch.load(weights_only=True)``, or safetensors.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import torch

#: Members of a ``.pt2`` archive that hold Python objects, unpickled by torch as they are.
_PYTHON_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")


def check_exported_program(path: Path) -> None:
    """Raise ``ValueError`` (naming the file and member) unless ``path`` is a zip archive
    whose every member ``torch.export.load`` would unpickle holds tensors and plain
    containers only."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a torch.export archive (a pickle is never loaded: it can run any "
            "code); save the model with torch.export.save(torch.export.export(model, …), path)"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickled = {name for name in names if name.endswith(".pt")}
        for config in (n for n in names if n.endswith("_config.json")):
            folder = PurePosixPath(config).parent
            entries = json.loads(archive.read(config)).get("config", {})
            for entry in entries.values():
                member = str(folder / entry["path_name"])
                if entry["path_name"].startswith(_PYTHON_OBJECT_PREFIXES):
                    raise ValueError(
                        f"{path}: refused, member {member} holds a Python object that torch "
                        "would unpickle; export a model whose constants are tensors"
                    )
                if entry.get("use_pickle"):
                    pickled.add(member)
        for member in sorted(pickled & set(names)):
            try:
                torch.load(io.BytesIO(archive.read(member)), weights_only=True)
            except Exception as error:
                raise ValueError(
                    f"{path}: refused, member {member} is not plain tensors "
                    f"({type(error).__name__}); the file may run code when loaded"
                ) from error


def load_exported_program(path: Path) -> torch.export.ExportedProgram:
    """The program in ``path``, after :func:`check_exported_program`."""
    check_exported_program(path)
    try:
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
