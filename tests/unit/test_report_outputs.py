"""The renderings follow report.json's rule in the output folder: deleted first, moved in last,
report.json deleted before them and moved in after them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tinyprune.outputs as outputs
from tinyprune.outputs import REPORTS, output_folder

RENDERINGS = ("report.md", "report.html", "junit.xml")


def _write_run(out: Path, tag: str) -> None:
    with output_folder(out, names=(*REPORTS, "src")) as work:
        (work / "src").mkdir()
        (work / "src" / "model.c").write_text(tag)
        for name in REPORTS:
            (work / name).write_text(tag)


def test_reports_are_the_renderings_then_report_json() -> None:
    assert set(RENDERINGS) < set(REPORTS) and REPORTS[-1] == "report.json"


def test_reports_deleted_first_and_moved_in_last(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    _write_run(out, "old")
    removed: list[str] = []
    moved: list[str] = []
    remove, rename = outputs._remove_file, os.rename

    def record_remove(path: Path) -> None:
        removed.append(path.name)
        remove(path)

    def record_rename(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        moved.append(Path(dst).name)
        rename(src, dst)

    monkeypatch.setattr(outputs, "_remove_file", record_remove)
    monkeypatch.setattr(os, "rename", record_rename)
    _write_run(out, "new")
    assert removed[:len(REPORTS)] == list(REPORTS[::-1])  # report.json first of all
    assert moved[-len(REPORTS):] == list(REPORTS)  # report.json last of all
    assert all((out / n).read_text() == "new" for n in REPORTS)


def test_a_failed_run_leaves_no_rendering(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_run(out, "old")
    with pytest.raises(RuntimeError), output_folder(out, names=(*REPORTS, "src")) as work:
        (work / "report.md").write_text("new")
        raise RuntimeError("the build failed")
    assert not any((out / n).exists() for n in REPORTS)


def test_a_rendering_someone_else_wrote_is_refused(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "junit.xml").write_text("mine")
    with pytest.raises(outputs.OutputError, match=r"junit\.xml exists and was not written"), \
            output_folder(fresh, force=True, names=(*REPORTS, "src")):
        pass
    assert (fresh / "junit.xml").read_text() == "mine"
