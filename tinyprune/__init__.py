"""tinyprune: prune Keras models and deploy them as verified int8 firmware on Cortex-M boards."""

__version__ = "0.1.0"
