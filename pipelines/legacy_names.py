"""Load models pickled before leadtier installed under one namespace.

Earlier releases installed the packages as top-level ``models``, ``features`` and ``pipelines``,
so a registered model's pickles name classes such as ``models.scorer.TierScorer`` and
``pipelines.mlflow_model.LeadtierModel``. :func:`old_module_names` lets those pickles load for the
duration of a ``with`` block: an import of ``models.x`` inside it returns ``leadtier.models.x``
(the very module, so classes are identical). Outside the block the old names do not import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

OLD_TOP_LEVEL = ("models", "features", "pipelines")


class _OldNameFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of ``models.x`` with the module ``leadtier.models.x``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] in OLD_TOP_LEVEL:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def create_module(self, spec):
        module = importlib.import_module(f"leadtier.{spec.name}")
        self._own_specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        """The module ran under its ``leadtier.`` name already; the import system has just set its
        ``__spec__`` to the old name's, which is put back (importlib.resources reads it)."""
        module.__spec__ = self._own_specs.pop(module.__name__)


@contextmanager
def old_module_names() -> Iterator[None]:
    """Within the block, ``import models.scorer`` (and the other old names) gives the leadtier module."""
    finder = _OldNameFinder()
    before = {name for name in sys.modules if name.split(".", 1)[0] in OLD_TOP_LEVEL}
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n.split(".", 1)[0] in OLD_TOP_LEVEL and n not in before]:
            del sys.modules[name]
