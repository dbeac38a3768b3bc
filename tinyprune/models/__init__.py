"""Model input: loading and saving Keras models (both flavors) and int8 TFLite files, safe mode,
parameter/MAC counts and the reference model zoo."""

from tinyprune.models.load import LoadedModel, load_model, save_model, wrap_model
from tinyprune.models.stats import count_macs, count_params, layer_macs

__all__ = [
    "LoadedModel",
    "count_macs",
    "count_params",
    "layer_macs",
    "load_model",
    "save_model",
    "wrap_model",
]
