"""The host compile of the generated code (verify.start_host_compile / host_compile): it runs
as a child process while the build runs the reference interpreter, says which line failed, and
can be stopped."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tinyprune import verify
from tinyprune.codegen import CProject
from tinyprune.errors import CheckFailed

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")


def _c_project(tmp_path: Path, body: str) -> CProject:
    src = tmp_path / "main.c"
    src.write_text(body)
    return CProject(directory=tmp_path, model_sources=(), kernel_sources=(), include_dirs=(),
                    samples_source=None, host_main=src, input_bytes=1, output_bytes=1)


def test_a_host_compile_error_is_one_line_naming_the_first_error(tmp_path: Path) -> None:
    project = _c_project(tmp_path, "int main(void) { return undeclared_name; }\n")
    with pytest.raises(CheckFailed, match=r"^host build of the generated code failed: .*main\.c"
                       r".*error: .undeclared_name. undeclared") as info:
        verify.host_compile(project, tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "host_model").exists()


def test_both_paths_compile_at_once_and_run(tmp_path: Path) -> None:
    project = _c_project(tmp_path, "int main(void) { return TP_USE_DSP ? 3 : 4; }\n")
    started = [verify.start_host_compile(project, tmp_path, dsp=d) for d in (False, True)]
    assert all(s.proc.poll() is None for s in started)  # both under way before either is waited
    exes = [s.wait() for s in started]
    assert [e.name for e in exes] == ["host_model", "host_model_dsp"]
    assert [os.spawnv(os.P_WAIT, str(e), [str(e)]) for e in exes] == [4, 3]


def test_cancel_stops_a_compile_that_still_runs(tmp_path: Path, monkeypatch) -> None:
    slow = tmp_path / "slow-cc"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setenv("CC", str(slow))
    started = verify.start_host_compile(_c_project(tmp_path, ""), tmp_path)
    t0 = time.monotonic()
    started.cancel()
    assert started.proc.returncode == -signal.SIGKILL and time.monotonic() - t0 < 5
