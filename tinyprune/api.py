"""The Python API: what the CLI, the tests and users call. ``build`` runs the whole pipeline.

Everything is written under the output folder only. Work happens in ``<out>/.partial`` and moves
into place when the build finishes, so a failed build leaves no half-written artifacts and never a
report that looks like a success (a stale ``report.json`` from an earlier run is removed first).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyprune.config import BuildOptions
from tinyprune.errors import UsageError

log = logging.getLogger("tinyprune")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` returns: the report (as written to report.json) and where it lives."""

    report: dict[str, Any]
    out_dir: Path

    @property
    def ok(self) -> bool:
        return bool(self.report["ok"])


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    created = not out.exists()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.md"):
        (out / stale).unlink(missing_ok=True)
    stage = out / ".partial"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "tmp").mkdir(parents=True)
    saved_tempdir = tempfile.tempdir
    tempfile.tempdir = str(stage / "tmp")  # the TF converter's scratch SavedModel goes here too
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        tempfile.tempdir = saved_tempdir
    shutil.rmtree(stage / "tmp", ignore_errors=True)
    for item in stage.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        item.replace(target)
    stage.rmdir()


class _Steps:
    """Numbered progress lines with timings: ``[3/9] quantize ... 1.2 s``."""

    NAMES = ("load", "prune", "quantize", "plan", "codegen", "verify on host", "build firmware",
             "run on emulator", "report")

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress or (lambda msg: log.info("%s", msg))

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        n = self.NAMES.index(name) + 1
        start = time.monotonic()
        self.progress(f"[{n}/{len(self.NAMES)}] {name}{' ' + detail if detail else ''} ...")
        yield
        self.progress(f"[{n}/{len(self.NAMES)}] {name} done in {time.monotonic() - start:.1f} s")


def build(opts: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Keras model or int8 .tflite -> verified firmware for a board, with a report.

    Raises:
        UsageError: bad input (exit 2). ToolMissing: toolchain or emulator absent (exit 3).
        CheckFailed: the image does not fit, or firmware faulted (exit 1). A build that completes
        with a broken budget or a bit-exactness failure returns a report with ``ok`` false.
    """
    from tinyprune import pipeline

    steps = _Steps(progress)
    board = pipeline.board_for(opts)
    out = opts.output_dir()
    with _staging(out) as stage:
        front = pipeline.front_end(opts, stage, steps, board)
        with steps.step("plan"):
            planned = pipeline.make_plan(front, board)
        with steps.step("codegen"):
            project = pipeline.make_project(front, planned, opts, stage)
        with steps.step("verify on host", f"({len(front.eval_inputs)} samples)"):
            host = pipeline.verify_on_host(front, project, stage, dsp=board.dsp)
        with steps.step("build firmware", f"for {board.name}"):
            firmware = pipeline.make_firmware(project, board, stage / "firmware",
                                              stack_bytes=opts.stack_bytes)
        with steps.step("run on emulator", opts.emulator):
            run = pipeline.emulate(front, firmware, board, opts, host.reference)
        with steps.step("report"):
            report = pipeline.assemble_report(opts, board, front, planned, firmware, host, run)
            from tinyprune.report import write_report

            write_report(report, stage)
    return BuildResult(report=report, out_dir=out)
