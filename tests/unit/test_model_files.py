"""Model files read with their sizes checked first, the official MLPerf Tiny KWS SavedModel
(TF 2.3, Keras metadata inside saved_model.pb), and no keras.json in the user's home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinyprune.errors import UsageError
from tinyprune.models import load, load_model, save_model
from tinyprune.models.zoo import ZOO

ROOT = Path(__file__).resolve().parents[2]
KWS = ROOT / "tests" / "fixtures" / "mlperf_tiny" / "kws_ref_model"
KWS_TFLITE = KWS.with_suffix(".tflite")
LIMIT = r"over tinyprune's limit of {} \(a damaged file, or not a model for a microcontroller"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("digits")
    return {"keras": save_model(ZOO["digits"]("keras3"), d / "m.keras"),
            "h5": save_model(ZOO["digits"]("tf_keras"), d / "m.h5")}


# ---------------------------------------------------------------- crafted files


def test_keras_config_bomb_refused_before_parsing(tmp_path: Path, digits: dict[str, Path]
                                                  ) -> None:
    """A config.json that unpacks to 24 MiB from a 25 KB file (the issue's was 1 GB from
    1.2 MB and built at 2.75 GB of memory)."""
    with zipfile.ZipFile(digits["keras"]) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["padding"] = " " * (24 << 20)
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else data)
    assert path.stat().st_size < 100_000
    with pytest.raises(UsageError, match=r"bomb\.keras: config\.json unpacks to 24\.0 MiB, "
                       + LIMIT.format(r"16\.0 MiB")):
        load_model(path)


def test_keras_archive_size_limit(tmp_path: Path, digits: dict[str, Path],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "extra.keras"
    with zipfile.ZipFile(digits["keras"]) as src, \
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("assets/blob", bytes(400_000))
    monkeypatch.setattr(load, "MAX_MODEL_BYTES", 300_000)  # the file itself is ~25 KB
    with pytest.raises(UsageError, match=r"extra\.keras: the archive unpacks to 497\.6 KiB, "
                       + LIMIT.format(r"293\.0 KiB")):
        load_model(path)


def test_h5_weights_declared_beyond_the_file_refused(tmp_path: Path, digits: dict[str, Path]
                                                     ) -> None:
    """A chunked dataset declaring 4 TiB in a file of a few hundred KB (reading it allocates
    the declared size)."""
    import shutil

    import h5py

    path = tmp_path / "bomb.h5"
    shutil.copy(digits["h5"], path)
    with h5py.File(path, "a") as h5:
        h5.create_dataset("model_weights/extra/kernel", shape=(2**20, 2**20), dtype="f4",
                          chunks=(1024, 1024), compression="gzip")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(UsageError, match=r"bomb\.h5: its weights declare 4\.0 TiB, "
                       + LIMIT.format(r"256\.0 MiB")):
        load_model(path)


def test_h5_external_link_refused(tmp_path: Path, digits: dict[str, Path]) -> None:
    import shutil

    import h5py

    path = tmp_path / "linked.h5"
    shutil.copy(digits["h5"], path)
    with h5py.File(path, "a") as h5:
        h5["model_weights/fc/outside"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    with pytest.raises(UsageError, match=r"linked\.h5: 'model_weights/fc/outside' links to "
                                         r"another file \(.*other\.h5\); expected a "
                                         r"self-contained model file"):
        load_model(path)


def test_h5_config_limit(digits: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "MAX_CONFIG_BYTES", 1000)
    with pytest.raises(UsageError, match=r"m\.h5: its model_config attribute holds .*, "
                       + LIMIT.format("1000 bytes")):
        load_model(digits["h5"])


@pytest.mark.parametrize(("limit", "value", "message"), [
    ("MAX_MODEL_BYTES", 500_000, r"the SavedModel folder holds 1\.1 MiB"),
    ("MAX_GRAPH_BYTES", 500_000, r"saved_model\.pb holds 800\.2 KiB"),
    ("MAX_CONFIG_BYTES", 20_000, r"its Keras metadata holds 57\.5 KiB"),
])
def test_savedmodel_limits(monkeypatch: pytest.MonkeyPatch, limit: str, value: int,
                           message: str) -> None:
    monkeypatch.setattr(load, limit, value)
    with pytest.raises(UsageError, match=rf"kws_ref_model: {message}, over tinyprune's limit"):
        load_model(KWS)


def test_tflite_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "MAX_MODEL_BYTES", 50_000)
    with pytest.raises(UsageError, match=r"kws_ref_model\.tflite: the file holds 52\.7 KiB"):
        load_model(KWS_TFLITE)


# ---------------------------------------------------------------- the official KWS SavedModel


def test_official_kws_savedmodel_loads_in_safe_mode() -> None:
    data = KWS / "variables" / "variables.data-00000-of-00001"
    assert not data.read_bytes().startswith(b"version https://git-lfs")  # real weights
    loaded = load_model(KWS)
    assert (loaded.kind, loaded.name) == ("tf_keras", "kws_ref_model")
    assert loaded.input_shapes == ((49, 10, 1),) and loaded.output_shapes == ((12,),)
    assert (loaded.params, loaded.macs) == (22_604, 2_656_768)  # published: 22.6k, 2.66 M
    x = np.random.default_rng(0).random((2, 49, 10, 1), dtype=np.float32)
    out = np.asarray(loaded.model(x, training=False))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)  # softmax output


def test_plain_savedmodel_still_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "plain"))
    with pytest.raises(UsageError, match=r"plain: expected a SavedModel saved by tf_keras \(with "
                                         r"Keras metadata\), received a plain TensorFlow"):
        load_model(tmp_path / "plain")


# ---------------------------------------------------------------- no keras.json in $HOME


def test_keras_build_leaves_home_untouched(tmp_path: Path) -> None:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KERAS_HOME"}
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    script = (
        "from tinyprune.models import load_model\n"
        "from tinyprune.quantize import quantize\n"
        f"model = load_model({str(ROOT / 'examples/digits/digits_cnn.keras')!r})\n"
        "assert quantize(model, None, samples=2)[4:8] == b'TFL3'\n"
        f"assert load_model({str(KWS)!r}).kind == 'tf_keras'\n"  # imports tf_keras too
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True,
                   timeout=600)
    assert list(home.iterdir()) == []
    assert not any("keras" in p.name for p in tmp.iterdir())


def test_existing_keras_json_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyprune.quiet import UNREACHABLE_KERAS_HOME, keep_keras_out_of_home

    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".keras").mkdir()
    (tmp_path / ".keras" / "keras.json").write_text("{}")
    assert not keep_keras_out_of_home()
    assert "KERAS_HOME" not in os.environ
    (tmp_path / ".keras" / "keras.json").unlink()
    assert keep_keras_out_of_home() and os.environ["KERAS_HOME"] == UNREACHABLE_KERAS_HOME
    assert not keep_keras_out_of_home()  # idempotent: the variable is now set
