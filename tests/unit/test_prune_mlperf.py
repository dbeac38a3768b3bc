"""The MLPerf Tiny reference models prune without barriers, in both flavors, and the figures
agree with tinyprune.models.stats (the counts report.json uses)."""

from __future__ import annotations

import pytest

from tinyprune.models import zoo
from tinyprune.models._backend import FLAVORS
from tinyprune.models.stats import count_macs, count_params
from tinyprune.prune import PruneConfig, prune

BUILDERS = ["kws_dscnn", "vww_mobilenet", "ic_resnet8", "ad_autoencoder"]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("name", BUILDERS)
def test_reference_model_prunes_exactly_with_matching_figures(name: str, flavor: str) -> None:
    model = getattr(zoo, name)(flavor=flavor)
    result = prune(model, PruneConfig(ratio=0.5, progress=False))  # verify=True: exactness
    assert result.barriers == ()
    assert result.flavor == flavor
    assert result.params_before == count_params(model)
    assert result.macs_before == count_macs(model)
    assert result.params_after == count_params(result.model)
    assert result.macs_after == count_macs(result.model)
    assert result.macs_after < 0.6 * result.macs_before
