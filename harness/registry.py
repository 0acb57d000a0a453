"""One generic registry for every kind of plugin: explainers, datasets, metrics, model recipes.

Three ways in, looked up in this order:

1. built-ins, registered with the ``@registry.register("name")`` decorator;
2. installed plugins, declared in another distribution's entry-point group (for example
   ``xai_harness.explainers``), whose entry-point name is the registered name;
3. ``"package.module:Name"`` written directly in a suite, imported on demand.

A name used twice fails loudly, and an unknown name fails with the known names and the
closest match.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from harness.component import Component
from harness.errors import HarnessError, UnknownNameError, did_you_mean

T = TypeVar("T", bound=type[Component])


class Registry(Generic[T]):
    """Maps names to plugin classes deriving from ``base``.

    ``kind`` is the noun used in messages ("explainer"); ``entry_point_group`` is the
    ``importlib.metadata`` group that installed plugins use.
    """

    def __init__(
        self,
        kind: str,
        base: T,
        entry_point_group: str,
        check: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self.entry_point_group = entry_point_group
        #: called with each class and its name as it is registered or found: raises a
        #: :class:`HarnessError` for a declaration the harness cannot honour
        self.check = check
        self._builtins: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator registering a built-in under ``name`` (also set as ``cls.name``)."""

        def decorate(cls: T) -> T:
            if name in self._builtins:
                raise HarnessError(
                    f"{self.kind} name '{name}' is registered twice "
                    f"({self._builtins[name].__module__} and {cls.__module__}); rename one"
                )
            self._check_type(cls, name)
            cls.name = name
            self._builtins[name] = cls
            return cls

        return decorate

    def _entry_points(self) -> dict[str, EntryPoint]:
        found: dict[str, EntryPoint] = {}
        for point in entry_points(group=self.entry_point_group):
            if point.name in self._builtins:
                raise HarnessError(
                    f"{self.kind} name '{point.name}' is taken by a built-in and by the "
                    f"plugin '{point.value}' (entry-point group {self.entry_point_group}); "
                    "rename the plugin"
                )
            if point.name in found and found[point.name].value != point.value:
                raise HarnessError(
                    f"{self.kind} name '{point.name}' is declared by two plugins "
                    f"('{found[point.name].value}' and '{point.value}'); uninstall or rename one"
                )
            found[point.name] = point
        return found

    def names(self) -> list[str]:
        """All known names: built-ins and installed plugins, sorted."""
        return sorted({*self._builtins, *self._entry_points()})

    def get(self, name: str) -> T:
        """The class registered as ``name``, an installed plugin, or ``"module:Class"``."""
        if name in self._builtins:
            return self._builtins[name]
        if ":" in name:
            return self._import(name)
        plugins = self._entry_points()
        if name in plugins:
            return self._load_entry_point(plugins[name])
        known = self.names()
        raise UnknownNameError(
            f"unknown {self.kind} '{name}'{did_you_mean(name, known)} "
            f"Known {self.kind}s: {', '.join(known)}"
        )

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._builtins or name in self._entry_points())

    def _load_entry_point(self, point: EntryPoint) -> T:
        try:
            cls = point.load()
        except Exception as exc:  # a broken plugin must not look like a harness bug
            raise HarnessError(
                f"{self.kind} plugin '{point.name}' ({point.value}) failed to import: {exc}"
            ) from exc
        self._check_type(cls, point.name)
        cls.name = point.name
        return cls

    def _import(self, reference: str) -> T:
        module_name, _, attribute = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownNameError(
                f"cannot import module '{module_name}' for {self.kind} '{reference}': {exc}; "
                "put it on PYTHONPATH or next to the suite file"
            ) from exc
        try:
            cls = getattr(module, attribute)
        except AttributeError:
            public = [n for n in dir(module) if not n.startswith("_")]
            raise UnknownNameError(
                f"module '{module_name}' has no attribute '{attribute}'"
                f"{did_you_mean(attribute, public)}"
            ) from None
        self._check_type(cls, reference)
        if "name" not in vars(cls):  # keep a name the class gave itself
            cls.name = reference
        return cls

    def _check_type(self, cls: object, name: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise HarnessError(
                f"{self.kind} '{name}' is {cls!r}, not a subclass of "
                f"{self.base.__module__}.{self.base.__qualname__}"
            )
        if self.check is not None:
            self.check(cls, name)
