"""Safe mode: each way a config can smuggle code past the scan is refused (models.safety).

Each case changes one field of a real config the way an attacker would and checks the message;
the load tests check that nothing from the file runs before the refusal.
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tinyprune.errors import UsageError
from tinyprune.models import load_model, save_model
from tinyprune.models._backend import keras_module
from tinyprune.models.safety import find_revived_layers, find_unsafe, find_unsafe_layers
from tinyprune.models.zoo import ZOO


def _config(flavor: str) -> dict[str, Any]:
    return json.loads(ZOO["digits"](flavor).to_json())


def _layer(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in config["config"]["layers"] if e["config"]["name"] == name)


def _set_module(c: dict[str, Any]) -> None:
    _layer(c, "conv1")["module"] = "keras_tp_evil"  # passed startswith("keras")


def _function_from_os(c: dict[str, Any]) -> None:
    _layer(c, "fc")["config"]["activation"] = {
        "module": "os", "class_name": "function", "config": "relu", "registered_name": "relu"}


def _registered_function(c: dict[str, Any]) -> None:
    _layer(c, "fc")["config"]["activation"] = {
        "module": "builtins", "class_name": "function", "config": "relu",
        "registered_name": "pk>relu"}


def _root_module(c: dict[str, Any]) -> None:
    c["module"] = "evil.models"  # 'Functional' was accepted whatever its module


def _tfsm_layer(c: dict[str, Any]) -> None:
    entry = _layer(c, "conv1")
    entry["class_name"] = "TFSMLayer"
    entry["config"] = {"name": "conv1", "filepath": "elsewhere", "call_endpoint": "serve"}


def _nested_compile_config(c: dict[str, Any]) -> None:
    # Keras applies compile_config of nested models even with compile=False; it was skipped.
    inner = copy.deepcopy(c)
    inner["compile_config"] = {"loss": {"module": "my_losses", "class_name": "MyLoss",
                                        "config": {}, "registered_name": "MyLoss",
                                        "shared_object_id": 7}}
    c["config"]["layers"].append(inner)


_BYPASSES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "module prefix": (_set_module, "layer 'conv1' uses custom object 'Conv2D' from module "
                                   "'keras_tp_evil' (arbitrary code)"),
    "function module": (_function_from_os, "layer 'fc' uses custom function 'relu' from module "
                                           "'os' (arbitrary code)"),
    "registered function": (_registered_function, "layer 'fc' uses registered custom object "
                                                  "'pk>relu' (arbitrary code)"),
    "root module": (_root_module, "layer 'digits_cnn' uses custom object 'Functional' from "
                                  "module 'evil.models' (arbitrary code)"),
    "TFSMLayer": (_tfsm_layer, "layer 'conv1' is a TFSMLayer, which loads and runs a "
                               "TensorFlow SavedModel named in its config"),
    "nested compile_config": (_nested_compile_config, "layer 'digits_cnn' uses custom object "
                                                      "'MyLoss' from module 'my_losses'"),
}


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
@pytest.mark.parametrize("case", sorted(_BYPASSES))
def test_bypass_is_found(case: str, flavor: str) -> None:
    config = _config(flavor)
    assert find_unsafe(config, flavor) == []  # type: ignore[arg-type]
    change, expected = _BYPASSES[case]
    change(config)
    found = find_unsafe(config, flavor)  # type: ignore[arg-type]
    assert found, case
    assert found[0].describe().startswith(expected)


def test_root_compile_config_is_not_scanned() -> None:
    config = _config("keras3")
    config["compile_config"] = {"loss": {"module": "my_losses", "class_name": "MyLoss",
                                         "config": {}, "registered_name": "MyLoss"}}
    assert find_unsafe(config, "keras3") == []  # not loaded (compile=False)


# ---------------------------------------------------------------- tf_keras op layers


@pytest.fixture(scope="module")
def tf_op_config() -> dict[str, Any]:
    import tensorflow as tf

    k = keras_module("tf_keras")
    inputs = k.Input((4,), name="input")
    x = tf.nn.relu6(k.layers.Dense(4, name="fc")(inputs)) + 1.0
    return json.loads(k.Model(inputs, x[:, :2]).to_json())


@pytest.mark.parametrize(("function", "safe"), [
    ("nn.relu6", True), ("__operators__.add", True), ("math.reduce_mean", True),
    ("reshape", True), ("io.write_file", False), ("io.gfile.rmtree", False),
    ("load_op_library", False), ("py_function", False), ("compat.v1.py_func", False),
    ("raw_ops.WriteFile", False), ("saved_model.load", False),
])
def test_tf_op_layers_only_call_tensor_math(tf_op_config: dict[str, Any], function: str,
                                            safe: bool) -> None:
    config = copy.deepcopy(tf_op_config)
    ops = [e for e in config["config"]["layers"] if e["class_name"] == "TFOpLambda"]
    assert [e["config"]["function"] for e in ops] == ["nn.relu6", "__operators__.add"]
    assert find_unsafe(config, "tf_keras") == []
    ops[0]["config"]["function"] = function
    found = find_unsafe(config, "tf_keras")
    assert (found == []) == safe
    if not safe:
        assert found[0].describe() == (f"layer '{ops[0]['config']['name']}' calls TensorFlow "
                                       f"function '{function}', which is not a tensor math op "
                                       "(side effects)")


# ---------------------------------------------------------------- SavedModel metadata


@pytest.mark.parametrize("config", [None, {"layer was saved without config": True}, "x"])
def test_savedmodel_layer_without_config_refused(config: Any) -> None:
    entries = [{"class_name": "Dense", "name": "fc", "config": config}]
    (found,) = find_unsafe_layers(entries, "tf_keras")
    assert found.describe() == ("layer 'fc' (Dense) has no usable config, so tf_keras would run "
                                "the SavedModel's saved TensorFlow functions for it")


def test_savedmodel_entries_are_walked() -> None:
    entries = [{"class_name": "Dense", "name": "fc",
                "config": {"name": "fc", "units": 3,
                           "kernel_initializer": {"class_name": "Evil", "config": {}}}}]
    (found,) = find_unsafe_layers(entries, "tf_keras")
    assert found.describe() == "layer 'fc' uses custom object 'Evil' (arbitrary code)"


def _savedmodel_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    from tf_keras.protobuf import saved_metadata_pb2

    k = keras_module("tf_keras")
    inputs = k.Input((4,), name="input")
    path = save_model(k.Model(inputs, k.layers.Dense(3, name="fc")(inputs)), tmp_path / "sm")
    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString((path / "keras_metadata.pb").read_bytes())
    for node in metadata.nodes:
        entry = json.loads(node.metadata)
        if entry.get("class_name") == "Dense":
            change(entry)
            node.metadata = json.dumps(entry)
    (path / "keras_metadata.pb").write_bytes(metadata.SerializeToString())
    return path


def test_layer_revived_from_savedmodel_functions_refused(tmp_path: Path) -> None:
    # A config that does not rebuild (units=-5) makes tf_keras run the saved TF graph instead.
    path = _savedmodel_with(tmp_path, lambda e: e["config"].update(units=-5))
    with pytest.raises(UsageError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: layer 'fc' could not be rebuilt from its config and was revived from the "
        "SavedModel's saved TensorFlow functions; pass --trust-model if you trust this file")
    assert load_model(path, trust_model=True).output_shapes == ((3,),)


def test_keras_models_are_not_revived() -> None:
    for flavor in ("keras3", "tf_keras"):
        assert find_revived_layers(ZOO["digits"](flavor)) == []


# ---------------------------------------------------------------- nothing runs before refusal


def test_module_named_like_keras_is_never_imported(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """tf_keras imports 'tf_' + a module that starts with 'keras': keras_tp_evil ran
    tf_keras_tp_evil.py from the user's path before the fix."""
    marker = tmp_path / "ran"
    package = tmp_path / "site"
    package.mkdir()
    (package / "tf_keras_tp_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
        "from tf_keras.layers import Dense\n")
    monkeypatch.syspath_prepend(str(package))
    path = save_model(ZOO["digits"]("tf_keras"), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    _layer(config, "fc")["module"] = "keras_tp_evil"
    members["config.json"] = json.dumps(config).encode()
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(evil, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(UsageError, match=r"evil\.keras: layer 'fc' uses custom object 'Dense' "
                                         r"from module 'keras_tp_evil'"):
        load_model(evil)
    assert not marker.exists()
    assert "tf_keras_tp_evil" not in os.sys.modules  # type: ignore[attr-defined]
