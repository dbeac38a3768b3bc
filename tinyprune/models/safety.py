"""Safe mode: find code-carrying objects in a saved Keras model's config before loading it.

Loading a Lambda layer, a lambda activation, a custom class or a function from an arbitrary module
runs Python code from the file (or from the user's environment), so such models are refused
unless the user trusts the file. The check reads only the JSON config: nothing from the model is
executed. Every entry is checked the way Keras will resolve it:

- ``module`` must be Keras' own (``keras``, ``tf_keras`` or a submodule such as ``keras.layers``;
  ``keras_evil`` is not), or ``builtins`` for a function saved by name: tf_keras imports any module
  a config names.
- ``registered_name`` must be empty or the class's own name (``"function"`` or the function's name
  for a function): any other value asks Keras for a registered custom object.
- ``class_name`` must be a class that the flavor's public namespaces export, and not one of the
  built-in layers that run code from outside the config (TFSMLayer, TorchModuleWrapper, JaxLayer,
  FlaxLayer); a function name must resolve to a Keras (or TensorFlow) built-in.
- tf_keras op layers (``TFOpLambda``, ``SlicingOpLambda``) call a TensorFlow function by API name:
  only tensor math namespaces are accepted (``tf.io.write_file`` or ``tf.load_op_library`` are not).
- Everything nested is checked (shared objects, wrapped layers, nested models and their
  ``compile_config``, which Keras applies to nested models even with ``compile=False``); only the
  root's ``compile_config`` / ``training_config`` is skipped, since it is not loaded.

A SavedModel layer without a usable config would be revived from the SavedModel's own TensorFlow
functions; :func:`find_unsafe_layers` refuses it, and :func:`find_revived_layers` checks the loaded
model for any layer tf_keras revived that way.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tinyprune.models._backend import Flavor, in_package, keras_module

# Helper entries of the serialization formats (not Python classes of the model).
_MARKERS = frozenset(
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
    }
)
# Classes exported outside the namespaces scanned by _builtin_classes.
_EXTRA_CLASSES = frozenset(
    {"Functional", "Sequential", "Model", "DTypePolicy", "Policy", "FloatDTypePolicy"}
)
# tf_keras layers that call a TensorFlow function by API name (config "function").
_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
# Built-in layers that run code from outside the config.
_CODE_LAYERS = {
    "TFSMLayer": "loads and runs a TensorFlow SavedModel named in its config",
    "TorchModuleWrapper": "unpickles a PyTorch module",
    "JaxLayer": "runs a JAX function",
    "FlaxLayer": "runs a Flax module",
}
_ROOT_SKIPPED_KEYS = frozenset({"compile_config", "training_config"})  # compile=False
_FUNCTION_KEYS = ("activation", "recurrent_activation")
_LAMBDA_CLASSES = frozenset({"Lambda", "__lambda__"})
_CLASS_NAMESPACES = (
    "layers",
    "initializers",
    "regularizers",
    "constraints",
    "losses",
    "metrics",
    "optimizers",
    "models",
)
_FUNCTION_NAMESPACES = ("activations", "losses", "metrics")
_FUNCTION_PACKAGES = ("keras", "tf_keras", "tensorflow")  # tf_keras resolves relu6 to tf.nn
# TensorFlow API namespaces of pure tensor math, for op layers.
_TF_MATH_NAMESPACES = frozenset(
    {"math", "nn", "linalg", "image", "signal", "bitwise", "__operators__", "dtypes", "random",
     "sparse"}
)
# Top-level TensorFlow functions that are not tensor math (code, files, graph control).
_TF_NOT_MATH = frozenset(
    {
        "print", "py_function", "numpy_function", "load_library", "load_op_library",
        "import_graph_def", "function", "register_tensor_conversion_function", "init_scope",
        "device", "name_scope", "control_dependencies", "custom_gradient", "recompute_grad",
        "Variable", "Module", "Operation", "Graph", "CriticalSection", "get_logger",
        "executing_eagerly", "inside_function", "check_preemption",
        "nondifferentiable_batch_function", "cond", "case", "switch_case", "while_loop",
        "map_fn", "vectorized_map", "scan", "foldl", "foldr",
    }
)
_NO_CONFIG_KEY = "layer was saved without config"  # tf_keras' placeholder


@dataclass(frozen=True)
class UnsafeObject:
    """A code-carrying object found in a model config.

    Attributes:
        layer: name of the layer holding it.
        what: ``"lambda"`` (Lambda layer or lambda function), ``"function"`` (custom function
            by name, or from a module outside Keras), ``"custom"`` (custom class, or a class from
            a module outside Keras), ``"registered"`` (a registered custom object),
            ``"code_layer"`` (a built-in layer that runs outside code), ``"tf_op"`` (an op layer
            calling a TensorFlow function that is not tensor math), ``"no_config"`` (a
            SavedModel layer without config) or ``"revived"`` (a loaded layer that tf_keras
            rebuilt from SavedModel functions).
        class_name: the class or function name as written in the config.
        detail: the module, registered name, TensorFlow function or reason at fault.
    """

    layer: str
    what: str
    class_name: str
    detail: str = ""

    def describe(self) -> str:
        messages = {
            "lambda": f"layer '{self.layer}' holds a lambda function (arbitrary code)",
            "function": f"layer '{self.layer}' uses custom function '{self.class_name}'"
                        + (f" from module '{self.detail}'" if self.detail else "")
                        + " (arbitrary code)",
            "custom": f"layer '{self.layer}' uses custom object '{self.class_name}'"
                      + (f" from module '{self.detail}'" if self.detail else "")
                      + " (arbitrary code)",
            "registered": f"layer '{self.layer}' uses registered custom object "
                          f"'{self.detail}' (arbitrary code)",
            "code_layer": f"layer '{self.layer}' is a {self.class_name}, which {self.detail}",
            "tf_op": f"layer '{self.layer}' calls TensorFlow function '{self.detail}', which is "
                     "not a tensor math op (side effects)",
            "no_config": f"layer '{self.layer}' ({self.class_name}) has no usable config, so "
                         "tf_keras would run the SavedModel's saved TensorFlow functions for it",
            "revived": f"layer '{self.layer}' could not be rebuilt from its config and was "
                       "revived from the SavedModel's saved TensorFlow functions",
        }
        if self.what == "lambda" and self.class_name == "Lambda":
            return f"layer '{self.layer}' is a Lambda layer (arbitrary code)"
        return messages[self.what]


@functools.cache
def _builtin_classes(flavor: Flavor) -> frozenset[str]:
    lib = keras_module(flavor)
    names: set[str] = set(_EXTRA_CLASSES)
    for namespace in _CLASS_NAMESPACES:
        ns = getattr(lib, namespace)
        names.update(n for n in dir(ns) if not n.startswith("_")
                     and isinstance(getattr(ns, n, None), type))
    return frozenset(names)


@functools.cache
def _is_builtin_function(name: str, flavor: Flavor) -> bool:
    """A function saved by name is built in when Keras resolves it to one of its own.

    Name lists are not enough: tf_keras resolves ``"relu6"`` although ``activations`` does not
    export it. Resolving by name only looks up Keras' own registry, so it runs no model code; the
    result must come from Keras (or TensorFlow), not from a custom object registered in-process.
    """
    lib = keras_module(flavor)
    found = [getattr(getattr(lib, ns), name, None) for ns in _FUNCTION_NAMESPACES]
    fn = next((f for f in found if callable(f) and not isinstance(f, type)), None)
    if fn is None:
        try:
            fn = lib.activations.get(name)
        except (ValueError, TypeError, KeyError):
            return False
    module = str(getattr(fn, "__module__", "") or "")
    return any(in_package(module, p) for p in _FUNCTION_PACKAGES)


def _is_keras_module(module: Any) -> bool:
    return isinstance(module, str) and any(in_package(module, p) for p in ("keras", "tf_keras"))


def _tf_op_is_math(name: str) -> bool:
    parts = name.split(".")
    if len(parts) == 1:
        return bool(name) and name not in _TF_NOT_MATH
    return parts[0] in _TF_MATH_NAMESPACES


def _check_entry(entry: dict[str, Any], layer: str, flavor: Flavor) -> UnsafeObject | None:
    """The verdict on one ``{"class_name": ...}`` entry (its children are walked separately)."""
    class_name = str(entry.get("class_name"))
    module = entry.get("module")
    registered = entry.get("registered_name")
    if class_name in _MARKERS:
        if module is not None and not (_is_keras_module(module)
                                       or in_package(str(module), "tensorflow")):
            return UnsafeObject(layer, "custom", class_name, str(module))
        return None
    if class_name == "function":  # a function by name (Keras 3 / tf_keras .keras format)
        fn_name = str(entry.get("config"))
        if module is not None and module != "builtins" and not _is_keras_module(module):
            return UnsafeObject(layer, "function", fn_name, str(module))
        if registered not in (None, "function", fn_name):
            return UnsafeObject(layer, "registered", fn_name, str(registered))
        if not _is_builtin_function(fn_name, flavor):
            return UnsafeObject(layer, "function", fn_name)
        return None
    if module is not None and not _is_keras_module(module):
        return UnsafeObject(layer, "custom", class_name, str(module))
    if registered not in (None, class_name):
        return UnsafeObject(layer, "registered", class_name, str(registered))
    if class_name in _CODE_LAYERS:
        return UnsafeObject(layer, "code_layer", class_name, _CODE_LAYERS[class_name])
    if class_name in _OP_LAYERS and flavor == "tf_keras":
        config = entry.get("config")
        function = str(config.get("function")) if isinstance(config, dict) else "?"
        return None if _tf_op_is_math(function) else UnsafeObject(layer, "tf_op", class_name,
                                                                   function)
    if class_name not in _builtin_classes(flavor):
        return UnsafeObject(layer, "custom", class_name)
    return None


def _is_lambda(entry: dict[str, Any]) -> bool:
    if entry.get("class_name") in _LAMBDA_CLASSES or entry.get("function_type") == "lambda":
        return True
    return set(entry) == {"value"} and isinstance(entry["value"], list)  # Keras 3 lambda fn


def _walk(node: Any, layer: str, flavor: Flavor, skip: frozenset[str] = frozenset()
          ) -> Iterator[UnsafeObject]:
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
    if "class_name" in node:
        found = _check_entry(node, layer, flavor)
        if found is not None:
            yield found
            return
    for key in _FUNCTION_KEYS:  # functions saved by name, e.g. activation="my_act"
        value = node.get(key)
        if isinstance(value, str) and not _is_builtin_function(value, flavor):
            yield UnsafeObject(layer, "function", value)
            return
    for key, value in node.items():
        if key not in skip:
            yield from _walk(value, layer, flavor)


def find_unsafe(config: dict[str, Any], flavor: Flavor) -> list[UnsafeObject]:
    """Return the code-carrying objects of a model config (outermost first; empty if safe).

    Args:
        config: the model config as saved (``config.json`` of a ``.keras`` zip, ``model_config``
            of an ``.h5`` file).
        flavor: which Keras saved it, to tell its built-in classes from custom ones.
    """
    inner = config.get("config") if isinstance(config, dict) else None
    name = inner.get("name") if isinstance(inner, dict) else None
    return list(_walk(config, name if isinstance(name, str) else "model", flavor,
                      _ROOT_SKIPPED_KEYS))


def find_unsafe_layers(layers: list[dict[str, Any]], flavor: Flavor) -> list[UnsafeObject]:
    """Same check on a list of per-object metadata entries (tf_keras SavedModel metadata).

    Each entry carries ``class_name`` and ``config`` (and, on the model entry, a
    ``training_config`` that is not loaded). An entry without a usable config is refused: tf_keras
    would revive it from the SavedModel's saved TensorFlow functions instead.
    """
    found: list[UnsafeObject] = []
    for entry in layers:
        name = str(entry.get("name", "?"))
        class_name = str(entry.get("class_name"))
        config = entry.get("config")
        if not isinstance(config, dict) or _NO_CONFIG_KEY in config:
            found.append(UnsafeObject(name, "no_config", class_name))
            continue
        found.extend(_walk({"class_name": class_name, "config": config}, name, flavor))
    return found


def find_revived_layers(model: Any) -> list[UnsafeObject]:
    """Layers of a loaded model that are not Keras classes (tf_keras revived them from the
    SavedModel's TensorFlow functions, e.g. because their config did not rebuild)."""
    flatten = getattr(model, "_flatten_layers", None)
    layers = list(flatten(include_self=True, recursive=True)) if flatten else [model]
    found = []
    for layer in layers:
        module = type(layer).__module__
        if not _is_keras_module(module) or ".saving." in module or \
                type(layer).__name__.startswith("Revived"):
            found.append(UnsafeObject(str(getattr(layer, "name", "?")), "revived",
                                      type(layer).__name__))
    return found
