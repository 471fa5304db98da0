"""The sanity script envbuild runs inside a prefix, loaded as a module for the tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.helpers import REPO

RUN_CHECKS = REPO / "builder" / "sanity" / "run_checks.py"


def load_run_checks() -> ModuleType:
    """``builder/sanity/run_checks.py`` as a fresh module (it runs standalone in a prefix,
    importing its siblings from its own directory)."""
    sys.path.insert(0, str(RUN_CHECKS.parent))
    try:
        spec = importlib.util.spec_from_file_location("envbuild_run_checks", RUN_CHECKS)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(RUN_CHECKS.parent))
