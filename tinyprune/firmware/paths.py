"""Where the runtime C sources, templates and board files live.

From a source checkout they sit next to the ``tinyprune`` package (``runtime/``, ``templates/``,
``boards/`` at the repository root). An installed wheel carries them as
``tinyprune/_data/{runtime,templates,boards}``. The packaged copy wins when both exist.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

import tinyprune

_PARTS = ("runtime", "templates", "boards")


@lru_cache(maxsize=1)
def data_dir() -> Path:
    """Return the folder that holds ``runtime/``, ``templates/`` and ``boards/``."""
    package = Path(tinyprune.__file__).resolve().parent
    packaged = package / "_data"
    if all((packaged / part).is_dir() for part in _PARTS):
        return packaged
    return package.parent


def runtime_dir() -> Path:
    """Return the folder of the C runtime (``include/``, ``kernels/``, ``bsp/``)."""
    return data_dir() / "runtime"


def templates_dir() -> Path:
    """Return the folder of the Jinja templates."""
    return data_dir() / "templates"


def boards_dir() -> Path:
    """Return the folder of the board files (``<name>.toml``)."""
    return data_dir() / "boards"


@lru_cache(maxsize=1)
def template_environment() -> jinja2.Environment:
    """The Jinja environment of every generated file: ``StrictUndefined`` (a missing value is an
    error, never an empty string), no autoescape, block whitespace trimmed. One per process, so
    each template is compiled once (Jinja checks the file's time stamp on each use)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
