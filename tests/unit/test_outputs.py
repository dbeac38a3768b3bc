"""The output folder's rules (tinyprune/outputs.py): refusals, complete replacement, user files,
links, failures, a full disk, and a process killed between any two filesystem operations."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

from tinyprune import outputs
from tinyprune.errors import CheckFailed
from tinyprune.outputs import MANIFEST, STAGING, OutputError, output_file, output_folder

NAMES = ("report.json", "model.bin", "src", "firmware")
OLD = {"report.json": '{"ok": true, "run": "old"}', "model.bin": "old model",
       "src/a.c": "old a", "src/b.c": "old b", "firmware/fw.elf": "old elf"}
NEW = {"report.json": '{"ok": true, "run": "new"}', "model.bin": "new model",
       "src/a.c": "new a", "src/c.c": "new c", "firmware/fw.elf": "new elf"}


def run(out: Path, files: dict[str, str], *, force: bool = False, fail: bool = False) -> None:
    """A fake build: writes ``files`` into the staging folder (and raises when ``fail``)."""
    with output_folder(out, force=force, names=NAMES) as work:
        for rel, text in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        if fail:
            raise CheckFailed("the build failed")


def tree(root: Path) -> dict[str, str]:
    """Every file under root (links shown as ->target), manifest excluded."""
    out = {}
    for here, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if Path(here, d).is_symlink()]:
            p = Path(here, name)
            rel = p.relative_to(root).as_posix()
            if rel != MANIFEST:
                out[rel] = f"->{os.readlink(p)}" if p.is_symlink() else p.read_text()
    return out


def test_new_folder_gets_outputs_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    run(out, NEW)
    assert tree(out) == NEW
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == sorted(NEW) and manifest["created_folder"] is True
    assert not (out / STAGING).exists()


def test_rerun_replaces_previous_outputs_completely(tmp_path: Path) -> None:
    run(tmp_path / "o", OLD)
    run(tmp_path / "o", NEW)
    assert tree(tmp_path / "o") == NEW  # no stale src/b.c from the previous model


def test_failed_rerun_leaves_no_report_and_no_old_outputs(tmp_path: Path) -> None:
    out = tmp_path / "o"
    run(out, OLD)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CheckFailed):
        run(out, NEW, fail=True)
    assert tree(out) == {"notes.txt": "mine"}


def test_failed_run_into_a_new_folder_removes_it(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed):
        run(tmp_path / "o", NEW, fail=True)
    assert not (tmp_path / "o").exists()


def test_foreign_folder_is_refused_naming_a_file(tmp_path: Path) -> None:
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    (out / "src" / "my_code.c").write_text("mine")
    with pytest.raises(OutputError, match=r"not empty.*src/my_code\.c.*--force"):
        run(out, NEW)
    assert tree(out) == {"src/my_code.c": "mine"} and not (out / MANIFEST).exists()


def test_force_writes_beside_user_files(tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    run(out, OLD, force=True)
    run(out, NEW)  # the manifest makes it tinyprune's folder: no --force needed again
    assert tree(out) == {**NEW, "notes.txt": "mine"}


@pytest.mark.parametrize("taken", ["src", "report.json", STAGING])
def test_force_still_refuses_a_name_it_did_not_write(tmp_path: Path, taken: str) -> None:
    out = tmp_path / "project"
    (out / taken).parent.mkdir(parents=True, exist_ok=True)
    if taken == "report.json":
        (out / taken).write_text("user's")
    else:
        (out / taken).mkdir()
        (out / taken / "keep.c").write_text("user's")
    before = tree(out)
    with pytest.raises(OutputError, match=f"{taken} exists and was not written by tinyprune"):
        run(out, NEW, force=True)
    assert tree(out) == before


def test_user_file_inside_tinyprunes_folder_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "o"
    run(out, OLD)
    (out / "src" / "my_code.c").write_text("mine")
    run(out, NEW)
    assert tree(out) == {**NEW, "src/my_code.c": "mine"}


def test_new_output_colliding_with_a_user_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    run(out, OLD)
    (out / "src" / "c.c").write_text("mine")  # the next build writes src/c.c
    with pytest.raises(OutputError, match=r"src/c\.c exists and was not written"):
        run(out, NEW)
    assert tree(out) == {"src/c.c": "mine"}  # old outputs gone, no report, user file intact


@pytest.mark.parametrize("link", ["firmware", STAGING, "src"])
def test_links_are_never_followed(tmp_path: Path, link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_text("user's")
    out = tmp_path / "o"
    run(out, OLD)
    target = out / link
    if target.exists():
        for p in sorted(target.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        target.rmdir()
    target.symlink_to(outside)
    with pytest.raises(OutputError, match=f"{link} is a symbolic link"):
        run(out, NEW)
    assert tree(outside) == {"precious.bin": "user's"}
    # refused before any work; only the old report went (this run failed: no success on disk)
    expected = {k: v for k, v in OLD.items() if k != "report.json" and not k.startswith(link)}
    assert tree(out) == {**expected, link: f"->{outside}"}


def test_out_as_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    run(tmp_path / "link", NEW)
    assert tree(real) == NEW
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match=r"symbolic link to .*nowhere, which does not exist"):
        run(tmp_path / "dangling", NEW)
    assert not (tmp_path / "nowhere").exists()


def test_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "o").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        run(tmp_path / "o", NEW)


@pytest.mark.parametrize("entry", ["../escape", "/etc/passwd", "src/../../x", ""])
def test_a_tampered_manifest_is_refused(tmp_path: Path, entry: str) -> None:
    out = tmp_path / "o"
    run(out, OLD)
    doc = json.loads((out / MANIFEST).read_text())
    doc["files"].append(entry)
    (out / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(OutputError, match="not a manifest this tinyprune wrote"):
        run(out, NEW)


def test_unwritable_folder_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "o"
    run(out, OLD)

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(outputs, "atomic_write", read_only)
    with pytest.raises(OutputError, match=r"cannot write in .*o: read-only file system"):
        run(out, NEW)


def test_disk_full_while_writing_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with pytest.raises(OutputError, match=r"no space left on device in .*o \(.*bytes free\) "
                       r"writing .*weights\.c"), output_folder(out, names=NAMES) as work:
        raise OSError(errno.ENOSPC, "No space left on device", str(work / "src" / "weights.c"))
    assert not out.exists()


def test_disk_full_under_a_compiler_is_named_by_the_free_space(tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(outputs, "free_bytes", lambda path: 4096)
    with pytest.raises(OutputError, match=r"no space left on device in .* \(4,096 bytes free\): "
                       "linking failed"), output_folder(tmp_path / "o", names=NAMES):
        raise CheckFailed("linking failed: ld returned 1 exit status")


def test_ordinary_failure_is_not_blamed_on_space(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match=r"^linking failed"), \
            output_folder(tmp_path / "o", names=NAMES):
        raise CheckFailed("linking failed: undefined reference to foo")


def test_one_run_at_a_time(tmp_path: Path) -> None:
    with output_folder(tmp_path / "o", names=NAMES), \
            pytest.raises(OutputError, match="another tinyprune run is writing into"):
        run(tmp_path / "o", NEW)
    run(tmp_path / "o", NEW)  # the lock went with the first run
    assert tree(tmp_path / "o") == NEW


def test_scratch_files_stay_inside_the_folder(tmp_path: Path) -> None:
    import tempfile

    with output_folder(tmp_path / "o", names=NAMES):
        assert Path(tempfile.gettempdir()).is_relative_to(tmp_path / "o")
        assert Path(os.environ["TMPDIR"]).is_relative_to(tmp_path / "o")
    assert not Path(tempfile.gettempdir()).is_relative_to(tmp_path)


# --- a kill between any two filesystem operations -----------------------------------------------

_MUTATORS = ("rename", "replace", "unlink", "rmdir", "mkdir", "open")


def _killed_child(out: Path, kill_at: int) -> int:
    """Forks a child that runs a rebuild and dies (os._exit, no cleanup) at the ``kill_at``-th
    filesystem operation; returns how many operations the child made (when it was not killed)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        count = [0]
        real = {name: getattr(os, name) for name in _MUTATORS}

        def counting(name: str):
            def op(*args, **kwargs):
                if name == "open" and not (args[1] if len(args) > 1 else 0) & (
                        os.O_WRONLY | os.O_RDWR):
                    return real[name](*args, **kwargs)  # reads change nothing
                count[0] += 1
                if count[0] == kill_at:
                    os._exit(137)
                return real[name](*args, **kwargs)
            return op

        for name in _MUTATORS:
            setattr(os, name, counting(name))
        try:
            run(out, NEW)
        finally:
            for name, fn in real.items():
                setattr(os, name, fn)
        os.write(write, str(count[0]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return int(text) if text else -1


def _consistent(out: Path) -> None:
    """A report on disk always sits beside the outputs of its own run, and only those."""
    files = tree(out)
    assert files.get("notes.txt") == "mine" and files.get("src/mine.c") == "mine"
    report = files.get("report.json")
    if report == OLD["report.json"]:
        assert all(files.get(k) == v for k, v in OLD.items())
        assert not set(NEW) - set(OLD) & set(files)
    elif report is not None:
        assert report == NEW["report.json"]
        assert all(files.get(k) == v for k, v in NEW.items())
        assert not (set(OLD) - set(NEW)) & set(files)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="needs fork")
def test_killed_at_any_point_leaves_no_wrong_report_and_a_rerun_works(tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        out = tmp_path / name
        run(out, OLD)
        (out / "notes.txt").write_text("mine")
        (out / "src" / "mine.c").write_text("mine")
        return out

    total = _killed_child(fresh("count"), kill_at=-1)
    assert total > 10
    for k in range(1, total + 1):
        out = fresh(f"k{k}")
        assert _killed_child(out, kill_at=k) == -1  # killed
        _consistent(out)
        run(out, NEW)  # a rerun into the same folder works and leaves exactly the new outputs
        assert tree(out) == {**NEW, "notes.txt": "mine", "src/mine.c": "mine"}


# --- single files -------------------------------------------------------------------------------

def _write(path: Path, text: str, **kw) -> None:
    with output_file(path, **kw) as tmp:
        tmp.write_text(text)


def test_single_file_rules(tmp_path: Path) -> None:
    target = tmp_path / "m_int8.tflite"
    _write(target, "one")
    assert target.read_text() == "one"
    with pytest.raises(OutputError, match="exists; pass --force"):
        _write(target, "two")
    _write(target, "two", force=True)
    assert target.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_int8.tflite"]  # no staging left


@pytest.mark.parametrize(("case", "message"), [
    ("missing folder", r"folder .*sub does not exist"),
    ("link", "is a symbolic link"),
    ("folder", "is a folder"),
    ("input", "is the input model"),
])
def test_single_file_refusals(tmp_path: Path, case: str, message: str) -> None:
    inputs = []
    target = tmp_path / "x.keras"
    if case == "missing folder":
        target = tmp_path / "sub" / "x.keras"
    elif case == "link":
        (tmp_path / "elsewhere").write_text("user's")
        target.symlink_to(tmp_path / "elsewhere")
    elif case == "folder":
        target.mkdir()
    else:
        target.write_text("the model")
        inputs = [target]
    with pytest.raises(OutputError, match=message):
        _write(target, "new", force=True, inputs=inputs)
    assert not target.with_name(f".{target.name}.tinyprune-partial").exists()
    if case == "link":
        assert (tmp_path / "elsewhere").read_text() == "user's"


def test_single_file_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.tflite"
    target.write_text("old")
    with pytest.raises(CheckFailed), output_file(target, force=True) as tmp:
        tmp.write_text("half")
        raise CheckFailed("conversion failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tflite"]
