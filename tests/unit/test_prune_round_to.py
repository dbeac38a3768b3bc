"""The build's pruning rounds kept channel counts to what the kernels tile best, or to
``--prune-round-to``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyprune import pipeline
from tinyprune.config import BuildOptions
from tinyprune.kernels import base
from tinyprune.models import load_model

DIGITS = Path(__file__).parents[2] / "examples" / "digits"


def test_the_kernels_declare_their_channel_multiple() -> None:
    """Conv (channel pairs, windows a word at a time), depthwise (four channels per word) and
    FC (row pairs, inputs a word at a time) tile best at multiples of 4."""
    assert base.channel_multiple() == 4
    assert base.channel_multiple(("CONV_2D",)) == 4
    assert base.channel_multiple(("ADD",)) == 1  # no channel_multiple declared
    assert pipeline.prune_round_to(BuildOptions()) == 4
    assert pipeline.prune_round_to(BuildOptions(prune_round_to=3)) == 3


def test_a_handler_tiling_by_eight_makes_the_build_round_to_eight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fc = base.handler_for(base.Op(0, "FULLY_CONNECTED", (), (), {}, "x"))
    monkeypatch.setattr(type(fc), "channel_multiple", 8, raising=False)
    assert pipeline.prune_round_to(BuildOptions()) == 8


@pytest.mark.parametrize("round_to", [None, 3])
def test_pruned_channel_counts_are_multiples_of_the_build_s_round_to(round_to: int | None
                                                                     ) -> None:
    opts = BuildOptions(board="nucleo_f746", model=DIGITS / "digits_cnn.keras",
                        prune_channels=0.6, prune_round_to=round_to)
    loaded = pipeline.Loaded(load_model(DIGITS / "digits_cnn.keras"), None)
    pruned = pipeline.prune_by_ratio(opts, loaded)
    assert pruned.summary is not None
    multiple = round_to or 4
    assert pruned.summary["round_to"] == multiple
    cut = [x for x in pruned.summary["layers"] if x["channels_after"] < x["channels_before"]]
    assert cut, pruned.summary["layers"]
    assert all(x["channels_after"] % multiple == 0 for x in cut), cut
