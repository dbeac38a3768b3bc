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
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinyprune.errors import UsageError
from tinyprune.models import safety
from tinyprune.models._backend import Flavor, flavor_of, keras_module
from tinyprune.models.limits import (
    MAX_CONFIG_BYTES,
    MAX_GRAPH_BYTES,
    MAX_MODEL_BYTES,
    check_size,
)
from tinyprune.models.stats import count_macs, count_params
from tinyprune.models.tflite_file import check_tflite

log = logging.getLogger(__name__)

ModelKind = Literal["keras3", "tf_keras", "tflite"]
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TRUST_HINT = "pass --trust-model if you trust this file"
SUPPORTED_SUFFIXES = (".keras", ".h5", ".hdf5", ".tflite", "SavedModel folder")
# SavedObject identifiers of Keras objects (tf_keras saving/legacy/saved_model/constants.py).
_KERAS_IDENTIFIERS = frozenset({
    "_tf_keras_input_layer", "_tf_keras_layer", "_tf_keras_metric", "_tf_keras_model",
    "_tf_keras_network", "_tf_keras_rnn_layer", "_tf_keras_sequential",
})


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
    tf_log = logging.getLogger("tensorflow")  # tf_keras logs load-time warnings here
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buffer):
            warnings.simplefilter("ignore")
            yield
    finally:
        tf_log.setLevel(level)
    if buffer.getvalue().strip():
        log.debug("keras said: %s", buffer.getvalue().strip())


# ---------------------------------------------------------------- format detection + safe mode


def _refuse_unsafe(path: Path, found: list[safety.UnsafeObject]) -> None:
    if found:
        raise UsageError(f"{path}: {found[0].describe()}; {_TRUST_HINT}")


def _flavor_from_version(version: str | None) -> Flavor:
    return "tf_keras" if version is not None and version.startswith("2.") else "keras3"


def _read_member(path: Path, archive: zipfile.ZipFile, name: str) -> Any:
    """A JSON member of a .keras archive, read no further than the config limit."""
    check_size(path, f"{name} unpacks to", archive.getinfo(name).file_size, MAX_CONFIG_BYTES)
    with archive.open(name) as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    check_size(path, f"{name} unpacks to", len(raw), MAX_CONFIG_BYTES)
    return json.loads(raw)


def _check_archive(path: Path, archive: zipfile.ZipFile) -> None:
    members = archive.infolist()
    check_size(path, "the archive unpacks to", sum(m.file_size for m in members),
               MAX_MODEL_BYTES)
    for member in members:
        if member.filename.endswith(".h5"):
            with archive.open(member) as f:
                _check_h5_datasets(path, f)


def _read_keras_zip(path: Path) -> tuple[Flavor, dict[str, Any]]:
    try:
        with zipfile.ZipFile(path) as archive:
            meta = _read_member(path, archive, "metadata.json")
            config = _read_member(path, archive, "config.json")
            _check_archive(path, archive)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RuntimeError) as exc:
        raise UsageError(f"{path}: not a Keras model (not a valid .keras archive: {exc})") from None
    if not isinstance(meta, dict) or not isinstance(config, dict):
        raise UsageError(f"{path}: not a Keras model (metadata.json or config.json is not an "
                         "object)")
    return _flavor_from_version(meta.get("keras_version")), config


def _check_h5_datasets(path: Path, source: Any) -> None:
    """Refuse an HDF5 file whose datasets declare more than MAX_MODEL_BYTES (before reading:
    chunked, compressed datasets can expand far beyond the file size), or that links to data in
    other files (external links, virtual or external-storage datasets)."""
    import h5py

    declared = 0

    def visit(name: str, link: Any) -> str | None:  # a non-None return stops the visit
        if isinstance(link, h5py.ExternalLink):
            return f"'{name}' links to another file ({link.filename})"
        return None

    def add(name: str, obj: Any) -> str | None:
        nonlocal declared
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                return f"dataset '{name}' keeps its data in other files"
            declared += math.prod(int(d) for d in (obj.shape or ())) * obj.dtype.itemsize
        return None

    with h5py.File(source, "r") as h5:
        problem = h5.visititems_links(visit) or h5.visititems(add)
    if problem:
        raise UsageError(f"{path}: {problem}; expected a self-contained model file")
    check_size(path, "its weights declare", declared, MAX_MODEL_BYTES)


def _h5_attr_text(path: Path, h5: Any, name: str) -> str | None:
    """An HDF5 string attribute, its declared size checked before it is read."""
    if name not in h5.attrs:
        return None
    attr = h5.attrs.get_id(name)
    if attr.dtype.kind == "S":  # fixed-length: the declared size is what h5py allocates
        size = math.prod(int(d) for d in (attr.shape or ())) * attr.dtype.itemsize
        check_size(path, f"its {name} attribute holds", size, MAX_CONFIG_BYTES)
    value = h5.attrs.get(name)
    text = value.decode() if isinstance(value, bytes) else value
    if text is not None and not isinstance(text, str):
        raise UsageError(f"{path}: not a Keras model (attribute {name} is not a string)")
    if text is not None:
        check_size(path, f"its {name} attribute holds", len(text), MAX_CONFIG_BYTES)
    return text


def _read_h5(path: Path) -> tuple[Flavor, dict[str, Any]]:
    with path.open("rb") as f:
        if f.read(8) != HDF5_MAGIC:
            raise UsageError(f"{path}: not a Keras model (not an HDF5 file)")
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            version = _h5_attr_text(path, h5, "keras_version")
            raw = _h5_attr_text(path, h5, "model_config")
        if raw is not None:
            _check_h5_datasets(path, path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a Keras model (damaged HDF5 file: {exc})") from None
    if raw is None:
        raise UsageError(
            f"{path}: not a Keras model (HDF5 file without a model config; "
            "weights-only files are not models)"
        )
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{path}: not a Keras model (model_config is not JSON: {exc})") from None
    return _flavor_from_version(version), config


def _folder_bytes(path: Path) -> int:
    """Bytes of the files in a folder (linked files count with their targets' size)."""
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):  # a dangling link: TensorFlow reports it
                total += os.stat(os.path.join(root, name)).st_size
    return total


def _metadata_entries(path: Path, raw: list[str]) -> list[dict[str, Any]]:
    check_size(path, "its Keras metadata holds", sum(len(r) for r in raw), MAX_CONFIG_BYTES)
    entries = [json.loads(r) for r in raw]
    if not all(isinstance(e, dict) for e in entries):
        raise ValueError("a metadata entry is not a JSON object")
    return entries


def _legacy_metadata(path: Path) -> list[str]:
    """Keras metadata kept inside ``saved_model.pb`` (SavedModels written before TF 2.5)."""
    keras_module("tf_keras")  # quiets TensorFlow and keeps Keras out of $HOME first
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    if not saved.meta_graphs:
        return []
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    return [node.user_object.metadata for node in nodes
            if node.WhichOneof("kind") == "user_object"
            and node.user_object.identifier in _KERAS_IDENTIFIERS and node.user_object.metadata]


def _read_savedmodel(path: Path) -> list[dict[str, Any]]:
    """The per-object Keras metadata of a tf_keras SavedModel (``keras_metadata.pb``, or inside
    ``saved_model.pb`` for TF < 2.5), sizes checked first."""
    graph = path / "saved_model.pb"
    if not graph.is_file():
        raise UsageError(f"{path}: not a model (folder without saved_model.pb)")
    check_size(path, "the SavedModel folder holds", _folder_bytes(path), MAX_MODEL_BYTES)
    check_size(path, "saved_model.pb holds", graph.stat().st_size, MAX_GRAPH_BYTES)
    meta_file = path / "keras_metadata.pb"
    try:
        if meta_file.is_file():
            check_size(path, "keras_metadata.pb holds", meta_file.stat().st_size,
                       MAX_CONFIG_BYTES)
            keras_module("tf_keras")
            from tf_keras.protobuf import saved_metadata_pb2

            metadata = saved_metadata_pb2.SavedMetadata()
            metadata.ParseFromString(meta_file.read_bytes())
            raw = [node.metadata for node in metadata.nodes]
        else:
            raw = _legacy_metadata(path)
        entries = _metadata_entries(path, raw)
    except UsageError:
        raise
    except Exception as exc:  # protobuf DecodeError or bad JSON
        raise UsageError(f"{path}: not a model (damaged SavedModel metadata: {exc})") from None
    if not entries:
        raise UsageError(
            f"{path}: expected a SavedModel saved by tf_keras (with Keras metadata), "
            "received a plain TensorFlow SavedModel; give the .keras or .h5 file"
        )
    return entries


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
        entries = _read_savedmodel(path)
        if not trust_model:
            _refuse_unsafe(path, safety.find_unsafe_layers(entries, flavor))
    else:
        check_size(path, "the file holds", path.stat().st_size, MAX_MODEL_BYTES)
        reader = _read_keras_zip if path.suffix == ".keras" else _read_h5
        flavor, config = reader(path)
        if not trust_model:
            _refuse_unsafe(path, safety.find_unsafe(config, flavor))
    model = _load_keras_file(path, flavor, trust_model)
    if not trust_model:
        _refuse_unsafe(path, safety.find_revived_layers(model))
    log.info("loaded %s (%s, %d layers)", path, flavor, len(model.layers))
    return wrap_model(model, path)


def _load_tflite(path: Path) -> LoadedModel:
    check_size(path, "the file holds", path.stat().st_size, MAX_MODEL_BYTES)
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
