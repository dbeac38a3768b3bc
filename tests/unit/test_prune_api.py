"""prune(): both flavors, Sequential and functional, criteria, targets, schedules, compensation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import convert_int8
from zoo import ARCHITECTURES, digits_cnn

from tinyprune.errors import CheckFailed, UsageError
from tinyprune.models._backend import FLAVORS, keras_module
from tinyprune.prune import CRITERIA, FineTune, PruneConfig, prune

QUIET = {"progress": False}


def digits_data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable toy data: the label is the brightest of 4 quadrants (+ 0..)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        q = rng.integers(4)
        r, c = divmod(int(q), 2)
        x[i, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] += 1.0
        y[i] = q
    return x, y


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("sequential", [True, False])
def test_demo_path_prunes_half_the_channels_and_keeps_the_flavor(flavor: str, sequential: bool,
                                                                  tmp_path) -> None:
    k = keras_module(flavor)
    model = digits_cnn(k, sequential=sequential)
    result = prune(model, PruneConfig(ratio=0.5, criterion="l1", **QUIET))
    assert result.flavor == flavor
    assert isinstance(result.model, k.Model)
    assert (type(result.model).__name__ == "Sequential") == sequential
    assert [(g.channels_before, g.channels_after) for g in result.groups] == [(16, 8)]
    assert result.params_after < result.params_before
    assert result.macs_after < result.macs_before
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    path = tmp_path / ("m.keras" if flavor == "keras3" else "m.h5")
    result.model.save(path)
    loaded = k.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(result.model(x)), atol=1e-6)


@pytest.mark.parametrize("name,flavor", [
    ("digits_cnn", "keras3"), ("digits_cnn", "tf_keras"), ("mobilenet_v2", "keras3"),
    ("squeezenet", "tf_keras"), ("conv1d_series", "keras3"),
])
def test_pruned_model_converts_to_int8_tflite(name: str, flavor: str) -> None:
    model = ARCHITECTURES[name](keras_module(flavor))
    result = prune(model, PruneConfig(ratio=0.5, keep_first=False, **QUIET))
    assert result.params_after < result.params_before
    shape = tuple(result.model.inputs[0].shape)[1:]
    assert len(convert_int8(result.model, shape, n=4)) > 0


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_prunes_with_data(criterion: str) -> None:
    model = digits_cnn(keras_module("keras3"))
    before = [w.copy() for w in model.get_weights()]
    result = prune(model, PruneConfig(ratio=0.5, criterion=criterion, **QUIET),
                   data=digits_data())
    assert [g.channels_after for g in result.groups] == [8]
    assert result.criterion == criterion
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize("criterion", ["taylor", "fisher", "snip"])
def test_gradient_criteria_without_data_are_refused(criterion: str) -> None:
    with pytest.raises(UsageError, match="expected data"):
        prune(digits_cnn(keras_module("keras3")), PruneConfig(criterion=criterion, **QUIET))


@pytest.mark.parametrize("field,value", [
    ("ratio", 1.0), ("ratio", -0.1), ("scope", "layer"), ("aggregate", "median"),
    ("round_to", 0), ("min_channels", 0), ("steps", 0), ("target_params", 0),
    ("layer_ratios", {"conv2d": 1.5}),
])
def test_bad_options_are_usage_errors_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(UsageError, match=field.split("[")[0]):
        PruneConfig(**{field: value})


def test_unknown_criterion_lists_the_supported_ones() -> None:
    with pytest.raises(UsageError, match="l1"):
        prune(digits_cnn(keras_module("keras3")), PruneConfig(criterion="magic", **QUIET))


@pytest.mark.parametrize("target", ["target_params", "target_macs", "target_flash",
                                    "target_ram"])
def test_targets_search_the_smallest_ratio_that_meets_them(target: str) -> None:
    model = ARCHITECTURES["mobilenet_v2"](keras_module("keras3"))
    full = prune(model, PruneConfig(ratio=0.0, **QUIET))
    attr = {"target_params": "params", "target_macs": "macs", "target_flash": "flash",
            "target_ram": "ram"}[target]
    limit = int(0.7 * getattr(full, f"{attr}_before"))
    result = prune(model, PruneConfig(**{target: limit}, keep_first=False, **QUIET))
    assert getattr(result, f"{attr}_after") <= limit
    assert 0.0 < result.ratio <= 0.9


def test_unreachable_target_fails_with_the_figures() -> None:
    with pytest.raises(CheckFailed, match="target_params"):
        prune(digits_cnn(keras_module("keras3")), PruneConfig(target_params=10, **QUIET))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_iterative_schedule_with_finetune_reports_accuracies(flavor: str) -> None:
    model = digits_cnn(keras_module(flavor))
    ft = FineTune(epochs=2, batch_size=32, lr_schedule="cosine", patience=1)
    config = PruneConfig(ratio=0.5, steps=2, step_finetune=FineTune(epochs=1), finetune=ft,
                         keep_first=False, **QUIET)
    result = prune(model, config, data=digits_data())
    assert result.steps == 2
    assert [(g.channels_before, g.channels_after) for g in result.groups] == [(8, 4), (16, 8)]
    acc = result.accuracy
    assert all(0.0 <= a <= 1.0 for a in (acc.before, acc.after_prune, acc.after_finetune))


def test_global_scope_ranks_channels_across_groups() -> None:
    model = ARCHITECTURES["mobilenet_v2"](keras_module("keras3"))
    config = PruneConfig(ratio=0.5, scope="global", keep_first=False, **QUIET)
    result = prune(model, config)
    before = sum(g.channels_before for g in result.groups)
    after = sum(g.channels_after for g in result.groups)
    assert after <= 0.6 * before
    assert all(g.channels_after % 4 == 0 for g in result.groups)


def _output_error(model, pruned, x) -> float:
    return float(np.mean((np.asarray(model(x)) - np.asarray(pruned(x))) ** 2))


def test_compensation_brings_outputs_closer_to_the_original() -> None:
    k = keras_module("keras3")
    inp = k.Input((8, 8, 1))
    x = k.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = k.layers.Conv2D(8, 3, padding="same")(x)
    x = k.layers.Flatten()(x)
    model = k.Model(inp, k.layers.Dense(4)(x))
    data = digits_data(128)
    base = PruneConfig(ratio=0.5, keep_first=False, keep=(model.layers[2].name,), **QUIET)
    plain = prune(model, base).model
    refit = prune(model, PruneConfig(**{**base.__dict__, "compensate": True}), data=data).model
    x_test = data[0][:64]
    assert _output_error(model, refit, x_test) < 0.5 * _output_error(model, plain, x_test)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_compensation_refits_a_chain_in_order(flavor: str) -> None:
    """Two refit layers in a row (conv2 reads cut conv1, the head reads cut conv2): each must be
    fit to the inputs it sees after the layers before it were refit. On a linear chain whose
    features span only the 2 input channels, that recovers the original outputs exactly."""
    k = keras_module(flavor)
    inp = k.Input((8, 8, 2))
    x = k.layers.Conv2D(16, 1, name="conv1")(inp)
    x = k.layers.Conv2D(16, 1, name="conv2")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    model = k.Model(inp, k.layers.Dense(4, name="head")(x))
    rng = np.random.default_rng(1)

    def draw(n: int) -> np.ndarray:  # per-sample offsets survive the average pooling
        return (rng.normal(size=(n, 8, 8, 2)) + rng.normal(size=(n, 1, 1, 2))).astype(np.float32)

    x_fit, x_test = draw(64), draw(32)
    config = PruneConfig(ratio=0.5, keep_first=False, compensate=True, **QUIET)
    result = prune(model, config, data=(x_fit, None))
    assert [(g.channels_before, g.channels_after) for g in result.groups] == [(16, 8), (16, 8)]
    expected = np.asarray(model(x_test))
    error = float(np.mean((np.asarray(result.model(x_test)) - expected) ** 2))
    assert error < 1e-4 * float(np.mean(expected ** 2))  # one pass of activations: ~5e-2


def test_report_serializes() -> None:
    result = prune(digits_cnn(keras_module("keras3")), PruneConfig(**QUIET))
    report = result.to_dict()
    assert "model" not in report
    assert report["layers"][0]["channels_before"] == 8
    assert report["params_before"] == result.params_before
