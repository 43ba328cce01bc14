"""Secrets engines and auth methods: each one exposes ``factory(mount: MountInfo) -> Engine``.

Besides the built-in engines, a server may load engines from its
``plugin_directory``: every ``<type>.py`` there that defines ``factory`` is
an engine mountable as ``<type>`` (an auth method if it sets ``KIND = "auth"``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from coffer.framework.engine import Factory


def builtin_engines() -> dict[str, Factory]:
    """The secrets engines, by type."""
    from coffer.engines import aws, kv

    return {"kv": kv.factory, "generic": kv.factory, "aws": aws.factory}


def builtin_auth_methods() -> dict[str, Factory]:
    """The auth methods, by type (the token method is built into core)."""
    from coffer.engines.auth import approle, aws, jwt, userpass

    return {"approle": approle.factory, "userpass": userpass.factory, "jwt": jwt.factory, "oidc": jwt.factory,
            "aws": aws.factory}


def load_plugins(directory: str) -> tuple[dict[str, Factory], dict[str, Factory]]:
    """The secrets engines and the auth methods defined by the Python modules in ``directory``."""
    found: tuple[dict[str, Factory], dict[str, Factory]] = ({}, {})
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
            raise ValueError(f"plugin {file} does not define factory(mount) -> Engine")
        found[getattr(module, "KIND", "secret") == "auth"][file.stem] = factory
    return found
