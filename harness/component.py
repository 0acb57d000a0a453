"""The base of every plugin: a name, a description and typed, validated parameters.

Each plugin class declares its parameters as a pydantic model, ``Params``, nested in the
class. Unknown parameters are rejected (``extra="forbid"``), so a typo in a suite fails
before anything runs; the validated parameters are stored with every result.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    DirectoryPath,
    FilePath,
    ValidationInfo,
)

#: Validation-context key: the folder of the suite file whose parameters are validated.
SUITE_FOLDER = "suite_folder"


def _beside_the_suite(value: Any, info: ValidationInfo) -> Any:
    """A relative path in a suite file is relative to that file's folder."""
    folder = (info.context or {}).get(SUITE_FOLDER)
    if not isinstance(value, str | Path):
        return value
    if folder is not None and not Path(value).is_absolute():
        return Path(folder) / value
    return Path(value)


#: An existing file; in a suite, relative to the suite file's folder.
SuiteFile = Annotated[FilePath, BeforeValidator(_beside_the_suite)]
#: An existing folder; in a suite, relative to the suite file's folder.
SuiteFolder = Annotated[DirectoryPath, BeforeValidator(_beside_the_suite)]
#: A path that need not exist yet; in a suite, relative to the suite file's folder.
SuitePath = Annotated[Path, BeforeValidator(_beside_the_suite)]


class Params(BaseModel):
    """Base of every plugin's parameter model: strict about unknown keys, immutable, and
    about types — no string, float or boolean is coerced into an integer (``"3"``,
    ``3.0``, ``true``), no NaN or infinity is accepted for a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Component:
    """A named, documented, parameterised plugin.

    The class docstring is the description (its first line is shown by
    ``xai-harness list``). A subclass declares its parameters by annotating
    ``params: MyParams`` (a :class:`Params` model): that annotation alone sets the
    ``Params`` class that validates them — it is not written twice. Instances are built
    from validated parameters.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = Params
    params: BaseModel

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = inspect.get_annotations(cls).get("params")
        if isinstance(declared, str):  # postponed annotation: a name in the class's module
            declared = vars(sys.modules[cls.__module__]).get(declared)
        if isinstance(declared, type) and issubclass(declared, BaseModel):
            cls.Params = declared

    def __init__(self, params: BaseModel | None = None, **kwargs: Any) -> None:
        self.params = params if params is not None else self.Params(**kwargs)

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring, for listings."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def config(self) -> dict[str, Any]:
        """The parameters as plain JSON-able data (what is stored with results)."""
        return self.params.model_dump(mode="json")

    def input_problems(self) -> list[str]:
        """Cheap checks of the files and columns the parameters name, run when the suite
        is loaded (so ``validate`` reports them before any cell runs): one message per
        problem, starting with the parameter's name. Default: none."""
        return []

    def input_paths(self) -> dict[str, Path]:
        """The files and folders this component reads, by parameter name (their content
        is fingerprinted with every run: :mod:`harness.inputs`). Default: every path-valued
        parameter; a component that reads files it does not name overrides this."""
        values = self.params.model_dump()
        return {name: value for name, value in values.items() if isinstance(value, Path)}
