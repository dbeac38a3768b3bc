"""Kernel handlers, one module per op family; importing them fills the registry in ``base``."""

from __future__ import annotations

import importlib
import pkgutil


def load_handlers() -> None:
    """Imports every handler module of this package once (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "quant"):
            importlib.import_module(f"{__name__}.{info.name}")
