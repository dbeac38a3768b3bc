"""Run stage: firmware ELFs on an emulated board (unicorn or QEMU), result-line parsing."""

from tinyprune.emulator.protocol import HarnessResults, SampleResult, parse_results
from tinyprune.emulator.result import RegionStats, RunResult
from tinyprune.emulator.runner import BACKENDS, run_elf

__all__ = [
    "BACKENDS",
    "HarnessResults",
    "RegionStats",
    "RunResult",
    "SampleResult",
    "parse_results",
    "run_elf",
]
