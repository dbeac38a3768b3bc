"""Safe mode: find code-carrying objects in a saved Keras model's config before loading it.

Loading a Lambda layer, a lambda activation or a custom class runs Python code from the file (or
from the user's environment), so such models are refused unless the user trusts the file. The check
reads only the JSON config: nothing from the model is executed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tinyprune.models._backend import Flavor, keras_module

# Built-in helper entries of the serialization formats (not Python classes of the model).
_SERIALIZATION_MARKERS = frozenset(
    {
        "__tuple__",
        "__keras_tensor__",
        "__numpy__",
        "__tensor__",
        "__bytes__",
        "__typespec__",
        "__ellipsis__",
        "__slice__",
        "TensorShape",
        "DTypePolicy",
        "Policy",
        "FloatDTypePolicy",
        "Functional",
        "Sequential",
        "Model",
        "TFOpLambda",
        "SlicingOpLambda",
    }
)
# Not loaded with compile=False (a custom loss there does not make the model unsafe).
_SKIPPED_KEYS = frozenset({"compile_config", "build_config", "training_config"})
_FUNCTION_KEYS = ("activation", "recurrent_activation")
_LAMBDA_CLASSES = frozenset({"Lambda", "__lambda__"})
_KERAS_NAMESPACES = (
    "layers",
    "initializers",
    "regularizers",
    "constraints",
    "activations",
    "losses",
    "metrics",
    "optimizers",
    "models",
)


@dataclass(frozen=True)
class UnsafeObject:
    """A code-carrying object found in a model config.

    Attributes:
        layer: name of the layer holding it.
        what: ``"lambda"`` (Lambda layer or lambda function), ``"function"`` (custom function by
            name) or ``"custom"`` (custom class).
        class_name: the class or function name as written in the config.
    """

    layer: str
    what: str
    class_name: str

    def describe(self) -> str:
        if self.what == "lambda":
            if self.class_name == "Lambda":
                return f"layer '{self.layer}' is a Lambda layer (arbitrary code)"
            return f"layer '{self.layer}' holds a lambda function (arbitrary code)"
        if self.what == "function":
            return f"layer '{self.layer}' uses custom function '{self.class_name}' (arbitrary code)"
        return f"layer '{self.layer}' uses custom object '{self.class_name}' (arbitrary code)"


@functools.cache
def _builtin_names(flavor: Flavor) -> frozenset[str]:
    lib = keras_module(flavor)
    names: set[str] = set()
    for namespace in _KERAS_NAMESPACES:
        names.update(n for n in dir(getattr(lib, namespace)) if not n.startswith("_"))
    return frozenset(names)


@functools.cache
def _is_builtin_function(name: str, flavor: Flavor) -> bool:
    """A function saved by name is built in when Keras resolves it without custom objects.

    Name lists are not enough: tf_keras resolves ``"relu6"`` although ``activations`` does not
    export it. Resolving by name only looks up Keras' own registry, so it runs no model code.
    """
    if name in _builtin_names(flavor):
        return True
    try:
        keras_module(flavor).activations.get(name)
    except (ValueError, TypeError):
        return False
    return True


def _is_builtin(entry: dict[str, Any], flavor: Flavor) -> bool:
    class_name = str(entry.get("class_name"))
    if class_name in _SERIALIZATION_MARKERS:
        return True
    if class_name == "function":  # a function by name: built-in only if Keras has it
        return _is_builtin_function(str(entry.get("config")), flavor)
    module = entry.get("module")
    if module is not None and not str(module).startswith("keras"):
        return False
    registered = entry.get("registered_name")
    if registered not in (None, class_name):
        return False
    return class_name in _builtin_names(flavor)


def _is_lambda(entry: dict[str, Any]) -> bool:
    if entry.get("class_name") in _LAMBDA_CLASSES or entry.get("function_type") == "lambda":
        return True
    return set(entry) == {"value"} and isinstance(entry["value"], list)  # Keras 3 lambda fn


def _walk(node: Any, layer: str, flavor: Flavor) -> Iterator[UnsafeObject]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, layer, flavor)
        return
    if not isinstance(node, dict):
        return
    config = node.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str) and "class_name" in node:
        layer = config["name"]
    if _is_lambda(node):
        yield UnsafeObject(layer, "lambda", str(node.get("class_name", "lambda")))
        return
    if "class_name" in node and not _is_builtin(node, flavor):
        if node["class_name"] == "function":
            yield UnsafeObject(layer, "function", str(node.get("config")))
        else:
            yield UnsafeObject(layer, "custom", str(node["class_name"]))
        return
    for key in _FUNCTION_KEYS:  # functions saved by name, e.g. activation="my_act"
        value = node.get(key)
        if isinstance(value, str) and not _is_builtin_function(value, flavor):
            yield UnsafeObject(layer, "function", value)
            return
    for key, value in node.items():
        if key not in _SKIPPED_KEYS:
            yield from _walk(value, layer, flavor)


def find_unsafe(config: dict[str, Any], flavor: Flavor) -> list[UnsafeObject]:
    """Return the code-carrying objects of a model config (outermost first; empty if safe).

    Args:
        config: the model config as saved (``config.json`` of a ``.keras`` zip, ``model_config``
            of an ``.h5`` file).
        flavor: which Keras saved it, to tell its built-in classes from custom ones.
    """
    name = config.get("config", {}).get("name", "model") if isinstance(config, dict) else "model"
    return list(_walk(config, str(name), flavor))


def find_unsafe_layers(layers: list[dict[str, Any]], flavor: Flavor) -> list[UnsafeObject]:
    """Same check on a list of per-layer metadata entries (tf_keras SavedModel metadata)."""
    found: list[UnsafeObject] = []
    for entry in layers:
        name = str(entry.get("name", "?"))
        if _is_lambda(entry):
            found.append(UnsafeObject(name, "lambda", str(entry.get("class_name"))))
        elif not _is_builtin({"class_name": entry.get("class_name")}, flavor):
            found.append(UnsafeObject(name, "custom", str(entry.get("class_name"))))
        else:
            found.extend(_walk(entry.get("config"), name, flavor))
    return found
