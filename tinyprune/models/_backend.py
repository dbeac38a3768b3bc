"""Lazy access to TensorFlow and the two Keras flavors.

Importing TensorFlow takes seconds, so nothing in tinyprune imports it at module level: call these
functions inside the code that needs it. The first call quiets TensorFlow's C++ logging and keeps
Keras from writing into the user's home folder (:func:`tinyprune.quiet.keep_keras_out_of_home`).
Keras 3 stays the default for ``tf.keras``; ``tf_keras`` (Keras 2) is imported only for models
saved by it.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any, Literal

from tinyprune.quiet import keep_keras_out_of_home

log = logging.getLogger(__name__)

Flavor = Literal["keras3", "tf_keras"]
FLAVORS: tuple[Flavor, ...] = ("keras3", "tf_keras")


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keep_keras_out_of_home()  # one rule for the CLI and the Python API (tinyprune/quiet.py)


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
