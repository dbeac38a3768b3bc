"""outputs.output_part: one sub-folder (a real board's report, ``board/``) added to a folder
tinyprune wrote, under the same rules as the folder itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyprune.errors import CheckFailed
from tinyprune.outputs import MANIFEST, STAGING, OutputError, output_folder, output_part

BUILD = {"report.json": "build report", "firmware/fw.elf": "elf"}
BOARD = {"report.md": "md", "report.json": "board report", "uart.log": "lines"}


def write(work: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)


def build(out: Path) -> None:
    with output_folder(out, names=("report.json", "firmware")) as work:
        write(work, BUILD)


def board(out: Path, files: dict[str, str] = BOARD, fail: bool = False) -> None:
    with output_part(out, "board") as work:
        write(work, files)
        if fail:
            raise CheckFailed("the board run failed")


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


def test_part_is_added_beside_the_build_and_listed(tmp_path: Path) -> None:
    build(tmp_path / "b")
    board(tmp_path / "b")
    assert (tmp_path / "b" / "board" / "report.json").read_text() == "board report"
    assert (tmp_path / "b" / "report.json").read_text() == "build report"
    m = manifest(tmp_path / "b")
    assert {"board/report.json", "board/uart.log", "report.json", "firmware/fw.elf"} <= \
        set(m["files"])
    assert "board" in m["dirs"] and STAGING not in m["dirs"]
    assert not (tmp_path / "b" / STAGING).exists()


def test_part_is_replaced_and_a_failure_leaves_none(tmp_path: Path) -> None:
    build(tmp_path / "b")
    board(tmp_path / "b")
    board(tmp_path / "b", {"report.json": "second"})
    assert sorted(p.name for p in (tmp_path / "b" / "board").iterdir()) == ["report.json"]
    with pytest.raises(CheckFailed):
        board(tmp_path / "b", fail=True)
    assert not (tmp_path / "b" / "board").exists()
    assert not any(f.startswith("board/") for f in manifest(tmp_path / "b")["files"])
    assert (tmp_path / "b" / "report.json").read_text() == "build report"


def test_a_new_build_removes_the_old_boards_report(tmp_path: Path) -> None:
    build(tmp_path / "b")
    board(tmp_path / "b")
    build(tmp_path / "b")  # new firmware: the board's report of the old one must go
    assert not (tmp_path / "b" / "board").exists()


def test_user_files_in_the_part_stay_and_are_never_overwritten(tmp_path: Path) -> None:
    build(tmp_path / "b")
    board(tmp_path / "b")
    (tmp_path / "b" / "board" / "notes.txt").write_text("mine")
    board(tmp_path / "b", {"report.json": "again"})
    assert (tmp_path / "b" / "board" / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputError, match=r"notes\.txt exists and was not written by tinyprune"):
        board(tmp_path / "b", {"notes.txt": "overwrite"})
    assert (tmp_path / "b" / "board" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("setup", ["missing", "foreign", "taken", "link"])
def test_part_refusals(setup: str, tmp_path: Path) -> None:
    out = tmp_path / "b"
    if setup == "foreign":
        write(out, {"report.json": "someone else's"})
    elif setup in ("taken", "link"):
        build(out)
        if setup == "taken":
            write(out, {"board/mine.txt": "mine"})
        else:
            (tmp_path / "elsewhere").mkdir()
            (out / "board").symlink_to(tmp_path / "elsewhere")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    with pytest.raises(OutputError) as exc:
        board(out)
    needle = {"missing": "no such folder", "foreign": "was not written by tinyprune",
              "taken": "was not written by tinyprune", "link": "symbolic link"}[setup]
    assert needle in str(exc.value)
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert after == before
