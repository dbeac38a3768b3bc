"""MobileNetV3Small (keras.applications, ``weights=None``, 32x32) pruned to 50% of its channels,
down to the firmware's C: hard-swish and squeeze-excite built from tensor ops, pruned through
them, checked on the host (the portable and DSP builds of the generated C against TFLite Micro,
2 samples + 2 random inputs; the emulator run of the same C is what the decoder rows of
``tests/e2e/test_backbones.py`` and the other e2e tests cover). The longest build of
``make test`` (minutes on a loaded 2-core machine), in its own file so that another test worker
takes the decoder rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests_support import BackboneRow, check_backbone_build

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def test_mobilenet_v3_small_pruned_builds_bit_exact_on_the_host(tmp_path: Path) -> None:
    check_backbone_build(BackboneRow("mobilenet_v3_small", prune=0.5, emulator="none"), tmp_path)
