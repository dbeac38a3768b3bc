"""The keyword-spotting data set of examples/kws on a small draw: shape, classes, the
speaker-independent split, determinism and the cache (needs espeak-ng; `make test` installs it).
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

KWS = Path(__file__).resolve().parents[2] / "examples" / "kws"

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; make test installs it)")


@pytest.fixture(scope="module")
def md() -> Any:
    sys.path.insert(0, str(KWS))
    try:
        module = importlib.import_module("make_data")
        assert Path(module.__file__).parent == KWS, module.__file__
        yield module
    finally:
        sys.path.remove(str(KWS))


def small(md: Any, seed: int = 0) -> Any:
    """3 keywords, 2 unknown words, 2 accents x 6 variants (2 of them held out): 96 clips."""
    return md.DataConfig(seed=seed, accents=("en-us", "en-gb-scotland"),
                         variants=md.VARIANTS[:6], keywords=("yes", "no", "stop"),
                         unknown_words=("bird", "seven"), repeats=2, unknown_per_voice=1,
                         silence_per_voice=1, test_fraction=0.34)


@pytest.fixture(scope="module")
def drawn(md: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng; make test "
                    "installs it)")
    config = small(md)
    cache = tmp_path_factory.mktemp("kws-cache")
    path = md.cached_dataset(config, cache, workers=2)
    with np.load(path) as npz:
        arrays = dict(npz)
    return {"config": config, "cache": cache, "path": path, "arrays": arrays}


@needs_espeak
def test_shapes_and_classes(md: Any, drawn: dict[str, Any]) -> None:
    a, config = drawn["arrays"], drawn["config"]
    assert list(a["classes"]) == [*md.KEYWORDS, "silence", "unknown"]
    keyword_labels = [md.KEYWORDS.index(w) for w in ("yes", "no", "stop")]
    for split, voices in (("train", 8), ("test", 4)):  # 2 accents x (4 | 2) variants
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        assert x.shape == (voices * 8, 49, 10, 1) and x.dtype == np.float32
        assert np.isfinite(x).all() and x.std() > 1.0
        counts = np.bincount(y, minlength=12)
        expected = np.zeros(12, dtype=int)
        expected[keyword_labels] = voices * config.repeats
        expected[md.SILENCE] = expected[md.UNKNOWN] = voices
        np.testing.assert_array_equal(counts, expected)
        assert len(set(a[f"voice_{split}"].tolist())) == voices


@needs_espeak
def test_split_is_speaker_independent(md: Any, drawn: dict[str, Any]) -> None:
    a, config = drawn["arrays"], drawn["config"]
    train, test = set(a["voice_train"].tolist()), set(a["voice_test"].tolist())
    assert not train & test

    def variants(names: set[str]) -> set[str]:
        return {n.split("+", 1)[1] if "+" in n else "" for n in names}

    assert not variants(train) & variants(test)
    assert variants(test) == set(md.test_variants(config))


@needs_espeak
def test_same_seed_same_bytes(md: Any, drawn: dict[str, Any], tmp_path: Path) -> None:
    again = tmp_path / "again.npz"
    md.save_npz(again, md.synthesise(drawn["config"], workers=1))  # no pool this time
    digest = hashlib.sha256(again.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(drawn["path"].read_bytes()).hexdigest()
    other = md.synthesise(small(md, seed=1), workers=1)
    assert not np.array_equal(other["x_train"], drawn["arrays"]["x_train"])


@needs_espeak
def test_loads_as_the_dscnn_input(drawn: dict[str, Any]) -> None:
    from tinyprune.data import load_dataset
    from tinyprune.models.zoo import REFERENCE

    data = load_dataset(drawn["path"], REFERENCE["kws"].input_shape)
    assert data.num_classes == REFERENCE["kws"].classes


@needs_espeak
def test_cache_is_reused_and_keyed(md: Any, drawn: dict[str, Any],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("synthesised again")

    monkeypatch.setattr(md, "synthesise", fail)
    assert md.cached_dataset(drawn["config"], drawn["cache"]) == drawn["path"]
    version = md.espeak_version()
    assert small(md, seed=1).key(version) != drawn["config"].key(version)
    with pytest.raises(AssertionError, match="synthesised again"):
        md.cached_dataset(small(md, seed=1), drawn["cache"])


def test_missing_espeak_exits_3(md: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "kws.npz"
    assert md.main(["--out", str(out), "--cache", str(tmp_path / "cache")]) == 3
    assert "espeak-ng not found" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_mfcc_front_end_shape() -> None:
    sys.path.insert(0, str(KWS))
    try:
        features = importlib.import_module("features")
    finally:
        sys.path.remove(str(KWS))
    rng = np.random.default_rng(0)
    waves = rng.uniform(-1, 1, (3, 16000)).astype(np.float32)
    out = features.mfcc(waves, batch=2)
    assert out.shape == (3, 49, 10, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[2], features.mfcc(waves[2:])[0], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="16000"):
        features.mfcc(waves[:, :8000])


def test_split_words_cuts_at_breaks(md: Any) -> None:
    rate = md.ESPEAK_RATE
    burst = np.full(rate // 4, 10000, np.int16)  # 250 ms of "speech"
    short_gap, long_gap = np.zeros(rate // 10, np.int16), np.zeros(rate // 2, np.int16)
    word = np.concatenate([burst, short_gap, burst])  # a word with a stop closure inside
    run = np.concatenate([long_gap, word, long_gap, burst, long_gap])
    pieces = md.split_words(run, 2)
    assert pieces is not None and [len(p) for p in pieces] == [len(word), len(burst)]
    assert md.split_words(run, 3) is None
    assert md.split_words(np.zeros(rate, np.int16), 1) is None


@needs_espeak
def test_word_by_word_fallback(md: Any, drawn: dict[str, Any],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    voice = md.plan(drawn["config"])[0]
    together = md.speak(voice)
    monkeypatch.setattr(md, "split_words", lambda samples, count: None)
    alone = md.speak(voice)
    assert sorted(alone) == sorted(together) == sorted(c.index for c in voice.spoken)
    assert all(len(alone[i]) > 0.1 * md.ESPEAK_RATE for i in alone)
