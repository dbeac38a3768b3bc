"""Keep third-party libraries quiet and out of the user's home.

- TensorFlow's C++ logging is set to errors only (``TF_CPP_MIN_LOG_LEVEL=3``) before it loads.
  A few lines come out before that setting can apply (absl's "All log messages before
  absl::InitializeLog()" and the CUDA stub's "Could not find cuda drivers"): they are printed while
  ``import tensorflow`` runs, so that one import runs with the process's stderr captured, and every
  captured line that is not such a log record is printed again.
- Keras writes ``~/.keras/keras.json`` when it is first imported and the file is missing. When the
  user has none and has not set ``KERAS_HOME``, ``KERAS_HOME`` names a path that cannot exist, so
  Keras runs on its defaults and writes nothing anywhere (a user's own ``keras.json`` or
  ``KERAS_HOME`` is left alone: Keras reads it and, as it exists, writes nothing). The Python
  API gets the same through :func:`keep_keras_out_of_home`, which ``tinyprune.models._backend``
  calls before its first TensorFlow import.

:func:`quiet_third_party` must run before anything imports TensorFlow; the CLI calls it first.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

# glog-style records ("I0000 00:00:1796117145.052051   12870 cudart_stub.cc:31] ...") and the
# older dated form ("2024-01-01 12:00:00.123456: I tensorflow/core/util/port.cc:113] ...").
_RECORD = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ |"
                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )\S+:\d+\] ")
_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
          "To enable the following instructions:")
UNREACHABLE_KERAS_HOME = os.path.join(os.devnull, "keras")


def is_log_noise(line: str) -> bool:
    """A C++ log record of TensorFlow / absl / CUDA (or its known continuation line)."""
    return bool(_RECORD.match(line)) or line.startswith(_NOISE)


def filtered(text: str) -> str:
    return "".join(ln for ln in text.splitlines(keepends=True) if not is_log_noise(ln))


@contextmanager
def stderr_filtered() -> Iterator[None]:
    """Runs the block with file descriptor 2 captured; prints back what is not log noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(filtered(sink.read().decode(errors="replace")))
                sys.stderr.flush()
    finally:
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's ``exec_module`` under :func:`stderr_filtered`."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            with stderr_filtered():
                self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader


class _QuietTensorflow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with a loader that filters what its import prints."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _users_keras_json() -> bool:
    """Whether Keras would find a ``keras.json`` of the user's (Keras 3 falls back to /tmp when
    the home folder is read-only)."""
    home = os.path.expanduser("~")
    base = home if os.access(home, os.W_OK) else "/tmp"  # as Keras 3 does
    return os.path.exists(os.path.join(base, ".keras", "keras.json"))


def keep_keras_out_of_home() -> bool:
    """Points ``KERAS_HOME`` where nothing can be written unless the user has a ``keras.json`` or
    a ``KERAS_HOME`` of their own; returns whether it did. Idempotent."""
    if "KERAS_HOME" in os.environ or _users_keras_json():
        return False
    os.environ["KERAS_HOME"] = UNREACHABLE_KERAS_HOME
    return True


def quiet_third_party() -> None:
    """Quiets TensorFlow's C++ logs and keeps Keras from writing its config (see module doc)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keep_keras_out_of_home()
    if "tensorflow" not in sys.modules and \
            not any(isinstance(f, _QuietTensorflow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorflow())
