"""The forked child that runs the TFLite Micro reference interpreter (verify._in_child): what
comes back to the parent for each way the child can end."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyprune import verify
from tinyprune.errors import UsageError
from tinyprune.ir import read_tflite

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

AD01 = Path(__file__).resolve().parents[1] / "fixtures" / "mlperf_tiny" / "ad01_int8.tflite"


def test_a_result_larger_than_a_pipe_buffer_comes_back_whole() -> None:
    big = np.arange(3 << 20, dtype=np.uint8).reshape(3, -1)  # 3 MiB
    got = verify._in_child(lambda: big)
    assert got.dtype == np.uint8 and np.array_equal(got, big)


def test_an_exception_of_the_child_is_raised_in_the_parent_as_it_was() -> None:
    def fail() -> np.ndarray:
        raise ValueError("bad input 7")

    with pytest.raises(ValueError, match=r"^bad input 7$"):
        verify._in_child(fail)


def test_an_exception_that_does_not_pickle_comes_back_as_its_text() -> None:
    class Local(Exception):  # a local class: pickle cannot find it by name
        pass

    def fail() -> np.ndarray:
        raise Local("cannot pickle me")

    with pytest.raises(RuntimeError, match=r"Local\('cannot pickle me'\)"):
        verify._in_child(fail)


def test_a_refusal_carries_the_interpreter_log_lines() -> None:
    def refuse() -> np.ndarray:
        os.write(2, b"kernel_util.cc:478 scale_diff / output_scale <= 0.02 was not true.\n")
        raise verify._Refused("TFLM failed to allocate tensors")

    with pytest.raises(verify._Refused, match=r"^TFLM failed to allocate tensors: "
                                              r"kernel_util\.cc:478 scale_diff"):
        verify._in_child(refuse)


def test_an_abort_is_a_crash_naming_the_signal_and_the_last_log_line() -> None:
    def abort() -> np.ndarray:
        os.write(2, b"first line\nadd.cc:61 CHECK failed\n")
        os.abort()

    with pytest.raises(verify._Crashed, match=r"^signal SIGABRT: first line add\.cc:61 CHECK"):
        verify._in_child(abort)


def test_a_child_that_exits_without_a_result_is_a_crash_with_its_status() -> None:
    def leave() -> np.ndarray:
        os._exit(3)

    with pytest.raises(verify._Crashed, match=r"^exit status 3$"):
        verify._in_child(leave)


def test_the_parent_kills_the_child_when_it_is_interrupted(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def hang() -> np.ndarray:
        pid_file.write_text(str(os.getpid()))
        time.sleep(60)
        return np.zeros(1, np.uint8)

    class Interrupted(Exception):
        pass

    def on_alarm(signum: int, frame: object) -> None:
        raise Interrupted

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        start = time.monotonic()
        with pytest.raises(Interrupted):
            verify._in_child(hang)
        assert time.monotonic() - start < 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process
        os.kill(pid, 0)


def test_output_of_the_child_does_not_reach_the_parent(capfd: pytest.CaptureFixture[str]) -> None:
    def noisy() -> np.ndarray:
        print("from python", flush=True)
        os.write(1, b"from C stdout\n")
        os.write(2, b"from C stderr\n")
        return np.zeros(1, np.uint8)

    verify._in_child(noisy)
    out, err = capfd.readouterr()
    assert "from" not in out and "from" not in err


def test_without_fork_the_interpreter_runs_in_process_with_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    graph = read_tflite(AD01)
    inputs = verify.random_inputs(graph, 2, seed=1)
    forked = verify.reference_outputs(AD01.read_bytes(), graph, inputs)
    monkeypatch.delattr(os, "fork")
    monkeypatch.setattr(verify, "_in_child", None)  # would fail if called
    assert np.array_equal(verify.reference_outputs(AD01.read_bytes(), graph, inputs), forked)


def test_a_damaged_file_is_refused_by_the_wrapper_parse_naming_the_model() -> None:
    graph = read_tflite(AD01, name="ad01.tflite")
    data = AD01.read_bytes()[:4000]  # what the interpreter's wrapper gets cannot be parsed
    with pytest.raises(UsageError, match=r"^ad01\.tflite: the TFLite Micro reference "
                                         r"interpreter (refuses|crashed on) the model"):
        verify.reference_outputs(data, graph, verify.random_inputs(graph, 1))
    assert sys.exc_info() == (None, None, None)
