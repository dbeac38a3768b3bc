"""Load and save models: ``.keras`` (Keras 3 or tf_keras), ``.h5`` and SavedModel folders
(tf_keras), and int8 ``.tflite`` files.

Keras files load in safe mode: :mod:`tinyprune.models.safety` reads the saved config first and a
model with a Lambda layer, a lambda function or a custom object is refused unless
``trust_model=True``. Every failure is a one-line :class:`~tinyprune.errors.UsageError` naming the
file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinyprune.errors import UsageError
from tinyprune.models import safety
from tinyprune.models._backend import Flavor, flavor_of, keras_module
from tinyprune.models.stats import count_macs, count_params
from tinyprune.models.tflite_file import check_tflite

log = logging.getLogger(__name__)

ModelKind = Literal["keras3", "tf_keras", "tflite"]
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TRUST_HINT = "pass --trust-model if you trust this file"
SUPPORTED_SUFFIXES = (".keras", ".h5", ".hdf5", ".tflite", "SavedModel folder")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for the pipeline.

    Attributes:
        path: the file or folder it came from (as given).
        kind: ``"keras3"``, ``"tf_keras"`` or ``"tflite"``.
        model: the Keras model object (None for ``.tflite``).
        tflite_bytes: the flatbuffer of a ``.tflite`` model (None for Keras models).
        input_shapes: per input, the shape without the batch dimension.
        output_shapes: per output, the shape without the batch dimension.
        params: parameters as deployed (BatchNormalization folded).
        macs: multiply-accumulates per inference.
    """

    path: Path
    kind: ModelKind
    model: Any
    tflite_bytes: bytes | None
    input_shapes: tuple[tuple[int | None, ...], ...]
    output_shapes: tuple[tuple[int | None, ...], ...]
    params: int
    macs: int

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Shape of the first input, without the batch dimension."""
        return self.input_shapes[0]

    @property
    def name(self) -> str:
        """File stem (``kws`` for ``models/kws.keras``)."""
        return self.path.stem if self.path.suffix else self.path.name

    @property
    def is_keras(self) -> bool:
        return self.kind != "tflite"


def _tensor_shapes(tensors: Any) -> tuple[tuple[int | None, ...], ...]:
    shapes = []
    for tensor in tensors:
        shape = tensor.shape
        dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
        shapes.append(tuple(None if d is None else int(d) for d in dims[1:]))
    return tuple(shapes)


def wrap_model(model: Any, path: str | Path = "<memory>") -> LoadedModel:
    """Wrap an in-memory Keras model (e.g. a pruned one) as a :class:`LoadedModel`."""
    return LoadedModel(
        path=Path(path),
        kind=flavor_of(model),
        model=model,
        tflite_bytes=None,
        input_shapes=_tensor_shapes(model.inputs),
        output_shapes=_tensor_shapes(model.outputs),
        params=count_params(model),
        macs=count_macs(model),
    )


@contextlib.contextmanager
def _quiet_keras() -> Iterator[None]:
    """Send Keras' load-time prints and warnings to the debug log."""
    import warnings

    buffer = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buffer):
        warnings.simplefilter("ignore")
        yield
    if buffer.getvalue().strip():
        log.debug("keras said: %s", buffer.getvalue().strip())


# ---------------------------------------------------------------- format detection + safe mode


def _refuse_unsafe(path: Path, found: list[safety.UnsafeObject]) -> None:
    if found:
        raise UsageError(f"{path}: {found[0].describe()}; {_TRUST_HINT}")


def _flavor_from_version(version: str | None) -> Flavor:
    return "tf_keras" if version is not None and version.startswith("2.") else "keras3"


def _read_keras_zip(path: Path) -> tuple[Flavor, dict[str, Any]]:
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json"))
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UsageError(f"{path}: not a Keras model (not a valid .keras archive: {exc})") from None
    return _flavor_from_version(meta.get("keras_version")), config


def _read_h5(path: Path) -> tuple[Flavor, dict[str, Any]]:
    with path.open("rb") as f:
        if f.read(8) != HDF5_MAGIC:
            raise UsageError(f"{path}: not a Keras model (not an HDF5 file)")
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            version = h5.attrs.get("keras_version")
            raw = h5.attrs.get("model_config")
    except OSError as exc:
        raise UsageError(f"{path}: not a Keras model (damaged HDF5 file: {exc})") from None
    if raw is None:
        raise UsageError(
            f"{path}: not a Keras model (HDF5 file without a model config; "
            "weights-only files are not models)"
        )
    version = version.decode() if isinstance(version, bytes) else version
    raw = raw.decode() if isinstance(raw, bytes) else raw
    return _flavor_from_version(version), json.loads(raw)


def _read_savedmodel(path: Path) -> list[dict[str, Any]]:
    if not (path / "saved_model.pb").is_file():
        raise UsageError(f"{path}: not a model (folder without saved_model.pb)")
    meta_file = path / "keras_metadata.pb"
    if not meta_file.is_file():
        raise UsageError(
            f"{path}: expected a SavedModel saved by tf_keras (keras_metadata.pb), "
            "received a plain TensorFlow SavedModel; give the .keras or .h5 file"
        )
    keras_module("tf_keras")
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        metadata.ParseFromString(meta_file.read_bytes())
        return [json.loads(node.metadata) for node in metadata.nodes]
    except Exception as exc:  # protobuf DecodeError or bad JSON
        raise UsageError(f"{path}: not a model (damaged keras_metadata.pb: {exc})") from None


# ---------------------------------------------------------------- loaders per format


def _load_keras_file(path: Path, flavor: Flavor, trust_model: bool) -> Any:
    lib = keras_module(flavor)
    kwargs: dict[str, Any] = {"compile": False}
    if path.suffix == ".keras":
        kwargs["safe_mode"] = not trust_model
    load = lib.saving.load_model if flavor == "keras3" else lib.models.load_model
    try:
        with _quiet_keras():
            return load(str(path), **kwargs)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError/... for bad files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: could not load the {flavor} model: {first_line}") from None


def _load_keras(path: Path, trust_model: bool) -> LoadedModel:
    if path.is_dir():
        flavor: Flavor = "tf_keras"
        if not trust_model:
            _refuse_unsafe(path, safety.find_unsafe_layers(_read_savedmodel(path), flavor))
        else:
            _read_savedmodel(path)
    else:
        reader = _read_keras_zip if path.suffix == ".keras" else _read_h5
        flavor, config = reader(path)
        if not trust_model:
            _refuse_unsafe(path, safety.find_unsafe(config, flavor))
    model = _load_keras_file(path, flavor, trust_model)
    log.info("loaded %s (%s, %d layers)", path, flavor, len(model.layers))
    return wrap_model(model, path)


def _load_tflite(path: Path) -> LoadedModel:
    data = path.read_bytes()
    info = check_tflite(path, data)
    return LoadedModel(
        path=path,
        kind="tflite",
        model=None,
        tflite_bytes=data,
        input_shapes=info.input_shapes,
        output_shapes=info.output_shapes,
        params=info.params,
        macs=info.macs,
    )


def load_model(path: str | Path, *, trust_model: bool = False) -> LoadedModel:
    """Load a model file for the pipeline.

    Args:
        path: a ``.keras`` file (Keras 3 or tf_keras, told apart by its metadata), an ``.h5``
            file, a tf_keras SavedModel folder, or a full-integer int8 ``.tflite`` file.
        trust_model: load Lambda layers and custom objects (runs code from the file).

    Returns:
        The :class:`LoadedModel`.

    Raises:
        UsageError: missing file, unsupported extension, not a model, a Lambda layer or custom
            object without ``trust_model``, or a ``.tflite`` that is not full-integer int8.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix in (".keras", ".h5", ".hdf5"):
        return _load_keras(path, trust_model)
    if path.suffix == ".tflite":
        return _load_tflite(path)
    raise UsageError(
        f"{path}: unsupported model format '{path.suffix or path.name}'; expected one of "
        f"{', '.join(SUPPORTED_SUFFIXES)}"
    )


def save_model(model: Any, path: str | Path) -> Path:
    """Save a Keras model (or a :class:`LoadedModel`) in its own flavor; returns the path.

    Keras 3 models save to ``.keras`` (or legacy ``.h5``); tf_keras models to ``.keras``,
    ``.h5`` or, for a path without a suffix, a SavedModel folder. A ``.tflite`` LoadedModel is
    written as its bytes.

    Raises:
        UsageError: the suffix does not fit the model's flavor.
    """
    path = Path(path)
    if isinstance(model, LoadedModel):
        if model.kind == "tflite":
            if path.suffix != ".tflite":
                raise UsageError(f"{path}: expected a .tflite path for an int8 TFLite model")
            path.write_bytes(model.tflite_bytes or b"")
            return path
        model = model.model
    flavor = flavor_of(model)
    allowed = (".keras", ".h5") if flavor == "keras3" else (".keras", ".h5", "")
    if path.suffix not in allowed:
        shown = ", ".join(s or "a folder (SavedModel)" for s in allowed)
        raise UsageError(f"{path}: a {flavor} model saves to {shown}; received '{path.suffix}'")
    with _quiet_keras():
        model.save(str(path))
    log.info("saved %s model to %s", flavor, path)
    return path
