"""Third-party noise: TensorFlow's C++ log records are dropped, everything else is kept."""

from __future__ import annotations

import os
import sys

from tinyprune.quiet import filtered, is_log_noise, stderr_filtered

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796117145.052051   12870 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "2024-01-05 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations "
    "are on.",
    "E0000 00:00:1700000000.000000    1 cuda_dnn.cc:8310] Unable to register cuDNN factory",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.",
]
KEPT = ["tinyprune: error: model.keras: no such file", "[1/10] load m.keras ...",
        "WARNING: no --data: calibration used seeded random inputs",
        "I0000 is not a log record without its file:line]"]


def test_log_records_are_noise_and_the_rest_is_not() -> None:
    assert all(is_log_noise(line) for line in NOISE)
    assert not any(is_log_noise(line) for line in KEPT)
    assert filtered("\n".join(NOISE + KEPT) + "\n") == "\n".join(KEPT) + "\n"


def test_c_level_writes_are_filtered(capfd) -> None:
    with stderr_filtered():
        os.write(2, ("\n".join(NOISE) + "\nkept from C\n").encode())
        print("kept from Python", file=sys.stderr)
    # (under pytest sys.stderr is not file descriptor 2, so the two may come in either order)
    assert sorted(capfd.readouterr().err.splitlines()) == ["kept from C", "kept from Python"]


def test_keras_home_points_nowhere_unless_the_user_has_a_config(tmp_path, monkeypatch) -> None:
    from tinyprune.quiet import UNREACHABLE_KERAS_HOME, quiet_third_party

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    quiet_third_party()
    assert os.environ["KERAS_HOME"] == UNREACHABLE_KERAS_HOME  # Keras can write nothing there
    monkeypatch.delenv("KERAS_HOME")
    (tmp_path / ".keras").mkdir()
    (tmp_path / ".keras" / "keras.json").write_text("{}")
    quiet_third_party()
    assert "KERAS_HOME" not in os.environ  # the user's own config is read as always
    assert list(tmp_path.rglob("*")) == [tmp_path / ".keras", tmp_path / ".keras" / "keras.json"]
