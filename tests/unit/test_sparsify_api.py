"""sparsify(): both flavors, every layer type and pattern, criteria, schedules, masks held through
training, composition with prune(), options and error paths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tinyprune.errors import UsageError
from tinyprune.models._backend import FLAVORS, keras_module
from tinyprune.prune import PruneConfig, prune
from tinyprune.prune.data import accuracy, as_dataset
from tinyprune.sparsify import (
    CRITERIA,
    PATTERNS,
    FineTune,
    Gradual,
    Iterative,
    OneShot,
    SparsifyConfig,
    canonical,
    sparsify,
)
from tinyprune.sparsify.engine import Sparsifier
from tinyprune.sparsify.masks import mask_callback

QUIET = {"progress": False}


def all_layers(k, seed: int = 0):
    """Every layer type with a sparse kernel, plus two that stay dense."""
    k.utils.set_random_seed(seed)
    inp = k.Input((8, 8, 1))
    x = k.layers.Conv2D(8, 3, padding="same", name="first")(inp)  # 1 input channel
    x = k.layers.Conv2D(8, 3, padding="same", name="conv3x3")(x)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.ReLU(name="relu")(x)
    x = k.layers.Conv2D(12, 1, name="conv1x1")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = k.layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    x = k.layers.Reshape((64, 8), name="seq")(x)
    x = k.layers.Conv1D(8, 3, padding="same", name="conv1d")(x)
    x = k.layers.Flatten(name="flat")(x)
    out = k.layers.Dense(10, name="fc")(x)
    return k.Model(inp, out, name="all_layers")


def small_cnn(k, seed: int = 0):
    k.utils.set_random_seed(seed)
    return k.Sequential([
        k.Input((8, 8, 1)), k.layers.Conv2D(8, 3, padding="same", activation="relu"),
        k.layers.Conv2D(16, 3, padding="same", name="conv"), k.layers.BatchNormalization(),
        k.layers.ReLU(), k.layers.GlobalAveragePooling2D(),
        k.layers.Dense(4, activation="softmax", name="fc"),
    ], name="small")


def toy_data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable: the label is the brightest quadrant."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    for i, q in enumerate(y):
        r, c = divmod(int(q), 2)
        x[i, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] += 1.0
    return x, y.astype(np.int64)


def kernels(model) -> dict[str, np.ndarray]:
    out = {}
    for layer in model.layers:
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        for key in ("pointwise_kernel", "kernel", "depthwise_kernel"):
            if key in names:
                out[layer.name] = np.asarray(layer.get_weights()[names.index(key)])
                break
    return out


# ---- layers, patterns, flavors -------------------------------------------------------------

@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_every_layer_type_takes_the_pattern_in_both_flavors(flavor: str, pattern: str) -> None:
    k = keras_module(flavor)
    model = all_layers(k)
    before = [w.copy() for w in model.get_weights()]
    result = sparsify(model, SparsifyConfig(pattern=pattern, depthwise=True, **QUIET))
    assert result.flavor == flavor and isinstance(result.model, k.Model)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    sparse = {x.name for x in result.layers}
    expected = ({"conv3x3", "conv1x1", "sep", "conv1d", "fc"}
                | ({"first"} if pattern == "1x1" else set())
                | ({"dw"} if pattern == "1x4" else set()))  # depthwise: 1x4 only
    assert sparse == expected
    assert {s.layer for s in result.skipped} == {"dw", "first"} - expected
    target = 0.75 if ":" not in pattern else 1 - int(pattern[0]) / 4
    final = kernels(result.model)
    for layer in result.layers:
        mask = result.masks[layer.name]
        assert not final[layer.name][~mask.keep].any(), layer.name  # removed weights are zero
        assert layer.zeros >= layer.removed
        assert abs(layer.sparsity - target) <= 16 / layer.weights + 0.1 * (pattern == "4x4")
    assert abs(result.sparsity - target) < 0.02
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    assert np.isfinite(np.asarray(result.model(x))).all()


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_reaches_the_target(criterion: str) -> None:
    x, y = toy_data()
    result = sparsify(small_cnn(keras_module("keras3")),
                      SparsifyConfig(sparsity=0.5, criterion=criterion, **QUIET), data=(x, y))
    assert result.criterion == criterion
    assert [round(x.sparsity, 3) for x in result.layers] == [0.5, 0.5]


def test_lookahead_keeps_the_blocks_whose_outputs_the_next_layer_reads_strongly() -> None:
    k = keras_module("keras3")
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((8,)), k.layers.Dense(8, name="a", use_bias=False),
                          k.layers.Dense(4, name="b", use_bias=False)])
    model.get_layer("a").set_weights([np.ones((8, 8), np.float32)])
    b = np.full((8, 4), 1e-3, np.float32)
    b[:4] = 1.0  # outputs 0..3 of "a" feed "b" strongly, 4..7 barely
    model.get_layer("b").set_weights([b])
    config = {"sparsity": 0.5, "layer_sparsity": {"b": 0.0}, **QUIET}
    plain = sparsify(model, SparsifyConfig(criterion="l1", **config)).masks["a"].keep
    look = sparsify(model, SparsifyConfig(criterion="lookahead", **config)).masks["a"].keep
    assert look[:, :4].all() and not look[:, 4:].any()  # [IN, OUT]: outputs 4..7 removed
    assert not np.array_equal(plain, look)


def test_lookahead_folds_the_batchnorm_that_follows_the_layer() -> None:
    k = keras_module("tf_keras")
    model = k.Sequential([k.Input((8,)), k.layers.Dense(8, name="a", use_bias=False),
                          k.layers.BatchNormalization(name="bn", epsilon=0.0),
                          k.layers.Dense(4, name="b", use_bias=False)])
    model.get_layer("a").set_weights([np.ones((8, 8), np.float32)])
    model.get_layer("b").set_weights([np.ones((8, 4), np.float32)])
    gamma = np.array([1e-3] * 4 + [1.0] * 4, np.float32)
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    model.get_layer("bn").set_weights([gamma, zeros, zeros, ones])
    result = sparsify(model, SparsifyConfig(sparsity=0.5, criterion="lookahead",
                                            layer_sparsity={"b": 0.0}, **QUIET))
    keep = result.masks["a"].keep  # outputs 0..3 are scaled to nothing by the BN
    assert not keep[:, :4].any() and keep[:, 4:].all()


@pytest.mark.parametrize("allocation", ["uniform", "erk", "global"])
def test_allocations_meet_the_target_and_the_override(allocation: str) -> None:
    result = sparsify(all_layers(keras_module("keras3")), SparsifyConfig(
        sparsity=0.8, allocation=allocation, layer_sparsity={"conv1d": 0.25}, **QUIET))
    by_name = {x.name: x for x in result.layers}
    assert by_name["conv1d"].sparsity == pytest.approx(0.25, abs=0.02)
    assert by_name["conv1d"].override == 0.25
    free = [x for x in result.layers if x.name != "conv1d"]
    assert sum(x.removed for x in free) / sum(x.weights for x in free) == pytest.approx(
        0.8, abs=0.01)
    assert max(x.sparsity for x in result.layers) <= 0.95 + 1e-9
    if allocation != "uniform":
        assert len({round(x.sparsity, 2) for x in free}) > 1


# ---- schedules and training ------------------------------------------------------------------

@pytest.mark.parametrize("flavor", FLAVORS)
def test_masks_hold_through_fine_tuning(flavor: str) -> None:
    k = keras_module(flavor)
    model = small_cnn(k)
    data = toy_data()
    result = sparsify(model, SparsifyConfig(
        sparsity=0.75, finetune=FineTune(epochs=2, batch_size=16, learning_rate=1e-2),
        **QUIET), data=data)
    trained = kernels(result.model)
    start = kernels(model)
    for layer in result.layers:
        keep = result.masks[layer.name].keep
        assert np.all(trained[layer.name][~keep] == 0.0), layer.name  # exactly zero
        assert not np.allclose(trained[layer.name][keep], start[layer.name][keep])  # trained
    assert result.accuracy.after_finetune is not None
    # without the mask callback, the same training regrows the removed weights
    from tinyprune.prune.finetune import finetune

    finetune(result.model, as_dataset(data), FineTune(epochs=1, batch_size=16,
                                                      learning_rate=1e-2))
    regrown = kernels(result.model)
    assert any(regrown[x.name][~result.masks[x.name].keep].any() for x in result.layers)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_mask_callback_holds_the_masks_from_the_first_step(flavor: str) -> None:
    model = small_cnn(keras_module(flavor))
    sp = Sparsifier(model, SparsifyConfig(sparsity=0.5, **QUIET), None)
    masks = sp.plan(0.5)
    seen: list[dict] = []
    callback = mask_callback(flavor, sp.layers, None,
                             on_begin=lambda params: seen.append(params) or masks)
    callback.set_params({"epochs": 1, "steps": 3})
    callback.on_train_begin()
    assert seen == [{"epochs": 1, "steps": 3}]
    for step in range(2):
        for layer in sp.layers:
            assert not layer.kernel()[~masks[layer.name].keep].any(), (step, layer.name)
            layer.variable.assign(np.ones(layer.kernel_shape, np.float32))  # an optimizer step
        callback.on_train_batch_end(step)


def test_gradual_sparsity_follows_the_polynomial() -> None:
    x, y = toy_data(96)
    schedule = Gradual(initial_sparsity=0.1, end_epoch=2, frequency=2)
    ft = FineTune(epochs=3, batch_size=16, validation_split=0.0)
    result = sparsify(small_cnn(keras_module("keras3")), SparsifyConfig(
        sparsity=0.8, schedule=schedule, finetune=ft, **QUIET), data=(x, y))
    steps = math.ceil(96 / 16)  # per epoch
    t1 = 2 * steps
    history = result.history
    assert [s.step for s in history] == [*range(0, t1, 2), t1]  # s_i applied at step 0
    for s in history:
        expected = 0.8 + (0.1 - 0.8) * (1 - s.step / t1) ** 3
        assert s.target == pytest.approx(expected)
        assert s.sparsity == pytest.approx(expected, abs=4 / 1152 + 1e-9)  # one 1x4 block
        assert s.epoch == s.step // steps
    assert history[-1].target == 0.8 and result.sparsity == pytest.approx(0.8, abs=0.005)
    assert all(a.sparsity <= b.sparsity for a, b in itertools.pairwise(history))


def test_imp_rewinds_the_survivors_to_epoch_k(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[tuple[list[np.ndarray], int]] = []
    real = Sparsifier.train

    def recording(self, ft, masks, **kwargs):
        starts.append(([w.copy() for w in self.model.get_weights()],
                       kwargs.get("initial_epoch", 0)))
        return real(self, ft, masks, **kwargs)

    monkeypatch.setattr(Sparsifier, "train", recording)
    model = small_cnn(keras_module("keras3"))
    schedule = Iterative(rounds=2, rewind_epoch=1, train_first=True)
    result = sparsify(model, SparsifyConfig(
        sparsity=0.75, schedule=schedule,
        finetune=FineTune(epochs=3, batch_size=16, learning_rate=1e-2), **QUIET),
        data=toy_data())
    assert [epoch for _, epoch in starts] == [0, 1, 1]  # training run, then two rounds from k
    (init, _), (round1, _), (round2, _) = starts
    assert all(np.array_equal(a, b) for a, b in zip(init, model.get_weights(), strict=True))
    names = [w.name for w in result.model.weights]
    kernel_ids = {i for i, w in enumerate(result.model.weights) if "kernel" in w.name}
    for i in range(len(names)):
        if i in kernel_ids:
            both = (round1[i] != 0) & (round2[i] != 0)  # kept in both rounds: same rewound value
            assert both.any() and np.array_equal(round1[i][both], round2[i][both])
        else:  # biases, BN: rewound to the same epoch-k values
            np.testing.assert_array_equal(round1[i], round2[i])
    assert not all(np.array_equal(a, b) for a, b in zip(init, round1, strict=True))
    assert [round(s.target, 4) for s in result.history] == [0.5, 0.75]
    assert all(s.accuracy is not None for s in result.history)


def test_oneshot_steps_grow_exponentially_to_the_target() -> None:
    result = sparsify(small_cnn(keras_module("keras3")), SparsifyConfig(
        sparsity=0.9, criterion="synflow", schedule=OneShot(steps=4), **QUIET))
    assert [round(s.target, 4) for s in result.history] == [
        round(1 - 0.1 ** (t / 4), 4) for t in range(1, 5)]
    assert result.sparsity == pytest.approx(0.9, abs=0.005)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_batchnorm_statistics_are_recalibrated_on_the_masked_model(flavor: str) -> None:
    k = keras_module(flavor)
    model = small_cnn(k)
    x, y = toy_data(96)
    config = {"sparsity": 0.75, "batch_size": 32, **QUIET}
    result = sparsify(model, SparsifyConfig(**config), data=(x, y))
    bn = next(layer for layer in result.model.layers if "batch_norm" in layer.name)
    conv = result.model.get_layer("conv")
    probe = k.Model(result.model.inputs[0], conv.output)
    features = np.asarray(probe(x, training=True)).reshape(-1, conv.output.shape[-1])
    mean, var = bn.get_weights()[2], bn.get_weights()[3]
    np.testing.assert_allclose(mean, features.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, features.var(axis=0), rtol=0.05)
    assert bn.momentum == pytest.approx(0.99)  # restored
    stale = sparsify(model, SparsifyConfig(recalibrate=False, **config), data=(x, y))
    bn_stale = next(layer for layer in stale.model.layers if "batch_norm" in layer.name)
    original = next(layer for layer in model.layers if "batch_norm" in layer.name)
    np.testing.assert_array_equal(bn_stale.get_weights()[2], original.get_weights()[2])


@pytest.mark.parametrize("flavor", FLAVORS)
def test_sparsify_after_structural_pruning(flavor: str) -> None:
    pruned = prune(small_cnn(keras_module(flavor)), PruneConfig(ratio=0.5, **QUIET))
    result = sparsify(pruned, SparsifyConfig(sparsity=0.5, **QUIET))
    shapes = {x.name: x.kernel_shape for x in result.layers}
    assert shapes["conv"] == (3, 3, 8, 8) and result.flavor == flavor  # 16 -> 8 filters
    assert canonical(result.masks["conv"].keep).shape == (8, 9, 8)


def test_accuracy_is_reported_before_and_after() -> None:
    x, y = toy_data()
    model = small_cnn(keras_module("keras3"))
    result = sparsify(model, SparsifyConfig(sparsity=0.5, **QUIET), data=(x, y))
    assert result.accuracy.before == accuracy(model, as_dataset((x, y)))
    assert result.accuracy.after_prune is not None and result.accuracy.after_finetune is None
    summary = result.summary()
    assert summary["pattern"] == "1x4" and summary["layers"][0]["name"] == "conv"
    import json

    json.dumps(summary)


# ---- options ---------------------------------------------------------------------------------

def test_from_options_builds_the_config() -> None:
    config = SparsifyConfig.from_options(
        {"sparsity": 0.9, "block": "4X4", "schedule": "gradual", "epochs": 6,
         "end_epoch": 4, "layers": {"fc": 0.5}}, criterion="lookahead")
    assert config.pattern == "4x4" and config.target == 0.9
    assert isinstance(config.schedule, Gradual) and config.schedule.end_epoch == 4
    assert config.finetune is not None and config.finetune.epochs == 6
    assert config.criterion == "lookahead" and dict(config.layer_sparsity or {}) == {"fc": 0.5}
    imp = SparsifyConfig.from_options(schedule="imp", rounds=2, epochs=3)
    assert isinstance(imp.schedule, Iterative) and imp.schedule.rounds == 2
    assert SparsifyConfig.from_options(block="2:4").target == 0.5


@pytest.mark.parametrize("options,match", [
    ({"sparsity": 1.5}, r"expected sparsity in \(0, 1\), received: sparsity=1.5"),
    ({"sparsity": "0.7"}, "expected sparsity a number"),
    ({"block": "3x3"}, "expected block one of"),
    ({"blok": "1x4"}, "received: blok='1x4'"),
    ({"schedule": "cosine"}, "expected schedule one of oneshot, gradual, imp"),
    ({"rounds": 3}, "expected rounds only with schedule='imp'"),
    ({"schedule": "gradual"}, "expected finetune FineTune"),
    ({"schedule": "imp", "epochs": 4, "rewind_epoch": 1}, "expected rewind_epoch 0 unless"),
    ({"block": "2:4", "sparsity": 0.75}, "expected sparsity 0.5 for pattern 2:4"),
    ({"epochs": 2.5}, "expected epochs an integer"),
    ({"layers": {"fc": 1.0}}, r"expected layer_sparsity\['fc'\] in \[0, 1\)"),
    ({"allocation": "magnitude"}, "expected allocation one of uniform, erk, global"),
    ({"criterion": "taylor"}, "expected criterion one of l1"),
    ({"sparsity": 0.97}, r"expected sparsity <= max_layer_sparsity \(0.95\)"),
])
def test_bad_options_name_the_option(options: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        SparsifyConfig.from_options(options, where="tinyprune.toml [sparsify]: ")
    assert str(info.value).startswith("tinyprune.toml [sparsify]: ")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("sparsity", [0.0, 1.0, -0.1, float("nan"), True])
def test_sparsity_out_of_range_is_refused(sparsity: float) -> None:
    with pytest.raises(UsageError, match="expected sparsity in"):
        SparsifyConfig(sparsity=sparsity)


@pytest.mark.parametrize("make,match", [
    (lambda: Iterative(levels=(0.5, 0.4)), "expected levels increasing"),
    (lambda: Iterative(levels=(0.5, 1.0)), "expected levels increasing"),
    (lambda: Gradual(start_epoch=2, end_epoch=2), "expected end_epoch > start_epoch"),
    (lambda: Gradual(initial_sparsity=1.0), "expected initial_sparsity in"),
    (lambda: OneShot(steps=0), "expected steps >= 1"),
    (lambda: SparsifyConfig(schedule=Gradual(end_epoch=5), finetune=FineTune(epochs=3)),
     r"expected end_epoch <= the fine-tune epochs \(3\)"),
    (lambda: SparsifyConfig(schedule=Iterative(rewind_epoch=3, train_first=True),
                            finetune=FineTune(epochs=3)), "expected rewind_epoch < the fine"),
    (lambda: SparsifyConfig(pattern="2:4", layer_sparsity={"fc": 0.25}),
     r"expected layer_sparsity\['fc'\] 0 or 0.5"),
])
def test_bad_schedule_options_are_refused(make, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        make()


@pytest.mark.parametrize("config,match", [
    ({"pattern": "4x4", "layer_sparsity": {"dw": 0.5}},
     "layer 'dw' cannot take pattern 4x4: depthwise kernels take 1x4 blocks only"),
    ({"layer_sparsity": {"first": 0.5}, "pattern": "2:4"},
     "layer 'first' cannot take pattern 2:4: 1 input"),
    ({"layer_sparsity": {"nope": 0.5}}, r"expected a layer of model 'all_layers' .*nope"),
    ({"criterion": "snip"}, "expected data for criterion 'snip'"),
    ({"schedule": Gradual(), "finetune": FineTune(epochs=2)}, "expected data for the gradual"),
    ({"schedule": Iterative(), "finetune": FineTune(epochs=2)}, "expected data for the imp"),
])
def test_layer_and_data_errors(config: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        sparsify(all_layers(keras_module("keras3")), SparsifyConfig(**config, **QUIET))


def test_a_model_without_a_layer_for_the_pattern_is_refused() -> None:
    k = keras_module("keras3")
    model = k.Sequential([k.Input((8, 8, 2)), k.layers.Conv2D(2, 3),
                          k.layers.DepthwiseConv2D(3)])
    with pytest.raises(UsageError, match=r"expected a layer that can take pattern 4x4.*2 output"):
        sparsify(model, SparsifyConfig(pattern="4x4", **QUIET))
    with pytest.raises(UsageError, match=r"1x4.*a first layer over 2 input channels stays dense "
                                         r"unless given a per-layer sparsity"):
        sparsify(model, SparsifyConfig(pattern="1x4", **QUIET))


def test_depthwise_layers_stay_dense_unless_asked_for() -> None:
    model = all_layers(keras_module("keras3"))
    plain = sparsify(model, SparsifyConfig(**QUIET))
    why = {s.layer: s.reason for s in plain.skipped}
    assert "dw" not in {x.name for x in plain.layers}
    assert why["dw"].startswith("depthwise layers stay dense unless asked for (depthwise=true")
    named = sparsify(model, SparsifyConfig(layer_sparsity={"dw": 0.5}, **QUIET))
    assert abs({x.name: x.sparsity for x in named.layers}["dw"] - 0.5) < 0.05  # whole blocks
    config = SparsifyConfig.from_options({"depthwise": True, "progress": False})
    assert config.depthwise and "dw" in {x.name for x in sparsify(model, config).layers}
    with pytest.raises(UsageError, match=r"expected depthwise true or false, received: "
                                         r"depthwise='yes'"):
        SparsifyConfig.from_options({"depthwise": "yes"})


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_first_layer_named_in_layer_sparsity_takes_blocks_along_its_filter_row(
        flavor: str) -> None:
    """The 3x3 first conv over one channel: 9 weights a row, two 1x4 blocks and a dense tail."""
    model = all_layers(keras_module(flavor))
    result = sparsify(model, SparsifyConfig(layer_sparsity={"first": 0.5}, **QUIET))
    layer = next(x for x in result.layers if x.name == "first")
    assert "first" not in {s.layer for s in result.skipped}
    keep = result.masks["first"].keep  # Keras [3, 3, 1, 8]
    rows = np.moveaxis(keep, -1, 0).reshape(8, 9)
    assert rows[:, 8].all()  # the tail past the last full block stays
    blocks = rows[:, :8].reshape(8, 2, 4)
    assert np.array_equal(blocks.all(axis=2), blocks.any(axis=2))  # whole blocks removed
    assert layer.removed == 36 and abs(layer.sparsity - 0.5) < 1e-9
    final = kernels(result.model)["first"]
    assert not final[~keep].any()
