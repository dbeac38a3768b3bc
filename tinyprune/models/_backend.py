"""Lazy access to TensorFlow and the two Keras flavors.

Importing TensorFlow takes seconds, so nothing in tinyprune imports it at module level: call these
functions inside the code that needs it. The first call quiets TensorFlow's C++ logging and keeps
Keras from writing into the user's home folder (see :func:`keep_keras_out_of_home`).
Keras 3 stays the default for ``tf.keras``; ``tf_keras`` (Keras 2) is imported only for models
saved by it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

log = logging.getLogger(__name__)

Flavor = Literal["keras3", "tf_keras"]
FLAVORS: tuple[Flavor, ...] = ("keras3", "tf_keras")
KERAS_PACKAGES = ("keras", "tf_keras")


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keep_keras_out_of_home()


def _default_keras_dir() -> Path:
    """Where Keras (both flavors) looks for ``keras.json`` when ``KERAS_HOME`` is not set."""
    home = Path(os.path.expanduser("~"))
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def keep_keras_out_of_home() -> Path | None:
    """Stop Keras from creating ``~/.keras/keras.json`` on import.

    Keras 3 and tf_keras write a default ``keras.json`` into ``$KERAS_HOME`` (else ``~/.keras``,
    or ``/tmp/.keras`` when the home folder is read-only) when they are imported and the file is
    missing. tinyprune writes nothing outside its output folder (SPEC.md), so when the user has
    no ``keras.json`` and has not set ``KERAS_HOME``, ``KERAS_HOME`` points at a private
    temporary folder for this process, removed at exit. A user's own ``keras.json`` or
    ``KERAS_HOME`` is left alone (Keras then reads it as always). Keras' download cache
    (``keras.utils.get_file``) follows ``KERAS_HOME``, so in that one case it goes to the temporary
    folder too.

    Returns:
        The temporary folder, or None when nothing was changed. Idempotent.
    """
    if "KERAS_HOME" in os.environ or all(p in sys.modules for p in KERAS_PACKAGES):
        return None
    if (_default_keras_dir() / "keras.json").exists():
        return None
    folder = Path(tempfile.mkdtemp(prefix="tinyprune-keras-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["KERAS_HOME"] = str(folder)
    log.debug("no keras.json: KERAS_HOME set to %s for this process", folder)
    return folder


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, imported on first use with its logs quieted."""
    _quiet()
    import tensorflow

    return tensorflow


def keras_module(flavor: Flavor) -> ModuleType:
    """Return ``keras`` (Keras 3) or ``tf_keras`` (Keras 2) for ``flavor``."""
    _quiet()
    if flavor == "keras3":
        import keras

        return keras
    if flavor == "tf_keras":
        import tf_keras

        return tf_keras
    raise ValueError(f"expected flavor 'keras3' or 'tf_keras', received: flavor={flavor!r}")


def in_package(module: str, package: str) -> bool:
    """True when ``module`` is ``package`` or one of its submodules (``keras.layers`` is in
    ``keras``; ``keras_tp_evil`` is not)."""
    return module == package or module.startswith(package + ".")


def flavor_of(model: Any) -> Flavor:
    """Tell which Keras flavor a model object belongs to (by its class module, no import)."""
    for cls in type(model).__mro__:
        module = cls.__module__
        if in_package(module, "tf_keras"):
            return "tf_keras"
        if in_package(module, "keras"):
            return "keras3"
    raise ValueError(f"expected a Keras model, received: {type(model).__name__}")
