"""The result-line parser, kept importable here: it lives in :mod:`tinyprune.protocol`, shared by
the emulator backends, Renode and the serial monitor (``tinyprune monitor``)."""

from tinyprune.protocol import (
    PROTOCOL_VERSION,
    HarnessResults,
    ResultStream,
    SampleResult,
    parse_results,
)

__all__ = ["PROTOCOL_VERSION", "HarnessResults", "ResultStream", "SampleResult", "parse_results"]
