"""Secrets engines. Each one exposes a factory: mount entry -> Backend.

Besides the built-in engines, a server may load engines from its
``plugin_directory``: every ``<type>.py`` there that defines ``factory`` is
an engine mountable as ``<type>``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffer.core.mounts import MountEntry
    from coffer.framework.backend import Backend

Factory = Callable[["MountEntry"], "Backend"]


def builtin_engines() -> dict[str, Factory]:
    from coffer.engines import aws, kv

    return {"kv": kv.factory, "generic": kv.factory, "aws": aws.factory}


def load_plugins(directory: str) -> dict[str, Factory]:
    """Engines defined by the Python modules in ``directory``."""
    found: dict[str, Factory] = {}
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f'plugin_directory "{directory}" is not a folder')
    for file in sorted(folder.glob("*.py")):
        if file.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"coffer_plugin_{file.stem}", file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        factory = getattr(module, "factory", None)
        if not callable(factory):
            raise ValueError(f"plugin {file} does not define factory(mount_entry) -> Backend")
        found[file.stem] = factory
    return found
