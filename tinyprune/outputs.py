"""Where tinyprune writes: the rules of the output folder (``--out``) and of single output files.

Every command that writes goes through :func:`output_folder` (``build``, ``check``, ``codegen``,
``export``), :func:`output_part` (``monitor``: one sub-folder of a build folder) or
:func:`output_file` (``prune``, ``quantize``, ``report``). The rules (README, "What tinyprune
touches"):

- tinyprune keeps a manifest of what it wrote, ``<out>/.tinyprune-manifest.json``, and only ever
  replaces or deletes a path listed there, never through a symbolic link.
- A non-empty folder without a manifest is refused (exit 2, naming a file in it) unless
  ``--force``; with ``--force`` tinyprune writes beside what is there, and still refuses when a
  name it writes is taken by something it did not write.
- One run at a time per folder (an advisory lock on the folder; a second run is refused).
- A run works in ``<out>/.tinyprune-partial/``. Before it starts, tinyprune's previous outputs are
  deleted, the report first; at the end the new files move into place and the report moves last.
  So a report on disk always sits beside the outputs of the same run, and a failed or killed run
  leaves no report (the next run clears whatever a kill left behind).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from tinyprune import __version__
from tinyprune.errors import CheckFailed, UsageError

log = logging.getLogger("tinyprune")

MANIFEST = ".tinyprune-manifest.json"
STAGING = ".tinyprune-partial"
_MANIFEST_TMP = MANIFEST + ".tmp"
RESERVED = (MANIFEST, _MANIFEST_TMP, STAGING)
FORMAT = 1
# Moved into place last, in this order, and deleted first, in the reverse order: a report means
# the run completed. Renderings of the report (Markdown, HTML, JUnit) go before report.json, so
# report.json is deleted first and moved in last of all.
REPORTS = ("report.md", "report.html", "junit.xml", "report.json")
# A subprocess step (compiler, linker) that fails with this little space left failed for lack of
# space, whatever its own message says (the linker deletes its half-written output first).
LOW_SPACE_BYTES = 1 << 20


class OutputError(UsageError):
    """Exit 2: the output folder or file cannot be used as asked (the message names the path)."""


@dataclass(frozen=True)
class Manifest:
    """What tinyprune wrote in a folder: files and folders, relative POSIX paths."""

    created_folder: bool = False
    files: frozenset[str] = field(default_factory=frozenset)
    dirs: frozenset[str] = field(default_factory=frozenset)

    def owns(self, rel: str) -> bool:
        return rel in self.files or rel in self.dirs

    def to_json(self) -> str:
        return json.dumps({"written_by": "tinyprune", "format": FORMAT,
                           "tinyprune_version": __version__,
                           "created_folder": self.created_folder,
                           "files": sorted(self.files), "dirs": sorted(self.dirs)}, indent=1)


def _valid_rel(rel: object) -> bool:
    if not isinstance(rel, str) or not rel or "\\" in rel:
        return False
    parts = PurePosixPath(rel).parts
    return not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts) \
        and "/".join(parts) == rel


def parse_manifest(text: str, where: Path) -> Manifest:
    """The manifest in ``text``; OutputError when it is not one tinyprune wrote."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    entries = doc.get("files", []) + doc.get("dirs", []) if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("written_by") != "tinyprune" or \
            doc.get("format") != FORMAT or not isinstance(entries, list) or \
            not all(_valid_rel(e) for e in entries):
        raise OutputError(f"{where}: not a manifest this tinyprune wrote; remove the folder's "
                          "content yourself or choose another --out")
    return Manifest(bool(doc.get("created_folder")), frozenset(doc["files"]),
                    frozenset(doc["dirs"]))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def atomic_write(path: Path, data: bytes) -> None:
    """Writes ``path`` through ``<path>.tmp`` renamed over it: a reader sees the old content or
    the new one, whole. The temporary file is created afresh, never through a link."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- checks made before any work ----------------------------------------------------------------

def _link_error(path: Path) -> OutputError:
    return OutputError(f"{path} is a symbolic link; tinyprune does not write or delete through "
                       "links: remove the link (its target is not touched) or choose another --out")


def _root_of(out: Path) -> Path:
    """The folder ``out`` names (a link to a folder is followed once); refusals for the rest."""
    if out.is_symlink():
        target = Path(os.path.realpath(out))
        if not target.exists():
            raise OutputError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does "
                              "not exist; create that folder or choose another --out")
        out = target
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder; choose a folder")
    return out


def _a_file_in(root: Path) -> Path:
    """A path to name in a refusal: the first entry, descending into folders to a file."""
    path = root
    for _ in range(4):
        entries = sorted((p for p in os.listdir(path) if p != _MANIFEST_TMP),
                         key=lambda p: (p.startswith("."), p)) \
            if path.is_dir() and not path.is_symlink() else []
        if not entries:
            break
        path = path / entries[0]
    return path


def _read_manifest(root: Path) -> Manifest | None:
    path = root / MANIFEST
    st = _lstat(path)
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{path}: expected tinyprune's manifest file, found something else; "
                          "remove it or choose another --out")
    try:
        return parse_manifest(path.read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: cannot read tinyprune's manifest ({exc}); remove it or "
                          "choose another --out") from None


def _check_taken(root: Path, manifest: Manifest, names: Iterable[str]) -> None:
    """Refuses when a name tinyprune writes is a link or something it did not write."""
    for name in (*names, STAGING):
        path = root / name
        st = _lstat(path)
        if st is None:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise _link_error(path)
        if not manifest.owns(name):
            raise OutputError(f"{path} exists and was not written by tinyprune, which writes "
                              f"{name} here; move it away or choose another --out (even with "
                              "--force tinyprune never overwrites a file it did not write)")


def _check_no_links(root: Path, manifest: Manifest) -> None:
    """Every listed path and each folder on the way to it must be real: never follow a link."""
    seen: set[str] = set()
    for rel in sorted(manifest.files | manifest.dirs):
        parts = PurePosixPath(rel).parts
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                continue
            seen.add(prefix)
            st = _lstat(root / prefix)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise _link_error(root / prefix)


def _refuse_foreign(root: Path, force: bool) -> None:
    entries = [e for e in os.listdir(root) if e != _MANIFEST_TMP]
    if entries and not force:
        raise OutputError(f"--out {root} is not empty and was not created by tinyprune (it holds "
                          f"{_a_file_in(root)}); choose an empty or new folder, or pass --force "
                          "to write beside those files (tinyprune never deletes or overwrites a "
                          "file it did not write)")


def _writable_error(root: Path, exc: OSError) -> OutputError:
    what = "no space left on device" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else \
        (exc.strerror or str(exc)).lower()
    return OutputError(f"cannot write in {root}: {what}; choose a writable --out with free space")


# --- the folder ---------------------------------------------------------------------------------

@dataclass
class _Folder:
    root: Path
    manifest: Manifest

    def save(self, manifest: Manifest) -> None:
        """Records ``manifest`` (atomically; with nothing listed, the file goes too)."""
        path = self.root / MANIFEST
        if not manifest.files and not manifest.dirs:
            path.unlink(missing_ok=True)
        else:
            atomic_write(path, manifest.to_json().encode())
        self.manifest = manifest

    @property
    def staging(self) -> Path:
        return self.root / STAGING


def _make_root(out: Path) -> tuple[Path, bool]:
    """The folder ``out`` names, created (with its parents) when missing; True if created."""
    root = _root_of(out)
    if root.exists():
        return root, False
    try:
        root.mkdir(parents=True)
    except FileExistsError:  # another run made it a moment ago
        return root, False
    except OSError as exc:
        raise _writable_error(root, exc) from None
    return root, True


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One run at a time per folder: an advisory lock on the folder itself, which the system
    releases when the process ends, however it ends."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another tinyprune run is writing into {root}; wait for it to "
                              "end or choose another --out") from None
        yield
    finally:
        os.close(fd)


def _open(root: Path, created: bool, force: bool, names: Sequence[str]) -> _Folder:
    try:
        if created:
            folder = _Folder(root, Manifest(created_folder=True))
        else:
            manifest = _read_manifest(root)
            if manifest is None:
                _refuse_foreign(root, force)
                manifest = Manifest()
            folder = _Folder(root, manifest)
            try:
                _check_taken(root, manifest, names)
                _check_no_links(root, manifest)
            except OutputError:
                _drop_reports(folder)  # this run failed: its folder must not look like a success
                raise
        # The first write, and the test that the folder is writable: from here on the staging
        # folder is tinyprune's (a kill leaves it listed for the next run to clear).
        folder.save(replace(folder.manifest, dirs=folder.manifest.dirs | {STAGING}))
    except OSError as exc:
        raise _writable_error(root, exc) from None
    return folder


def _drop_reports(folder: _Folder) -> None:
    """Deletes tinyprune's own reports (never through a link). Best effort."""
    reports = folder.manifest.files & set(REPORTS)
    try:
        for rel in reports:
            _remove_file(folder.root / rel)
        if reports:
            folder.save(replace(folder.manifest, files=folder.manifest.files - reports))
    except OSError as exc:
        log.debug("could not remove the old report in %s: %s", folder.root, exc)


def _remove_file(path: Path) -> None:
    st = _lstat(path)
    if st is not None and not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        path.unlink()


def _remove_tree(path: Path) -> None:
    """Removes tinyprune's own working folder (``shutil.rmtree`` never follows links inside)."""
    st = _lstat(path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)


def _deletion_order(rel: str) -> tuple[int, str]:
    return (REPORTS[::-1].index(rel) if rel in REPORTS else len(REPORTS), rel)


def _deepest_first(dirs: Iterable[str]) -> list[str]:
    return sorted(dirs, key=lambda d: (-d.count("/"), d))


def _clear(folder: _Folder) -> None:
    """Deletes tinyprune's previous outputs, reports first; keeps folders holding user files."""
    m = folder.manifest
    for rel in sorted(m.files, key=_deletion_order):
        _remove_file(folder.root / rel)
    _remove_tree(folder.staging)
    kept = set()
    for rel in _deepest_first(m.dirs - {STAGING}):
        try:
            (folder.root / rel).rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty: it holds files tinyprune did not write
            kept.add(rel)
    folder.save(replace(m, files=frozenset(), dirs=frozenset(kept | {STAGING})))


def _walk(top: Path) -> tuple[set[str], set[str]]:
    files: set[str] = set()
    dirs: set[str] = set()
    for here, subdirs, names in os.walk(top):
        rel = Path(here).relative_to(top).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs.update(prefix + d for d in subdirs)
        files.update(prefix + n for n in names)
    return files, dirs


def _check_conflicts(folder: _Folder, files: set[str], dirs: set[str]) -> None:
    for rel in sorted(dirs | files):
        path = folder.root / rel
        st = _lstat(path)
        if st is None:
            continue
        ours_dir = stat.S_ISDIR(st.st_mode) and rel in dirs and rel in folder.manifest.dirs
        if not ours_dir:
            raise OutputError(f"{path} exists and was not written by tinyprune; move it away or "
                              "choose another --out (tinyprune never overwrites a file it did not "
                              "write)")


def _move_into(src: Path, dst: Path, last: Sequence[str] = ()) -> None:
    """Moves the entries of ``src`` into ``dst``: whole folders where ``dst`` has none, merged
    where it keeps one of tinyprune's folders; the ``last`` names after everything else."""
    entries = sorted(os.listdir(src), key=lambda n: (last.index(n) + 1 if n in last else 0, n))
    for name in entries:
        target = dst / name
        if (src / name).is_dir() and _lstat(target) is not None:
            _move_into(src / name, target, last)
        else:
            os.rename(src / name, target)


def _commit(folder: _Folder, work: Path) -> None:
    files, dirs = _walk(work)
    _check_conflicts(folder, files, dirs)
    kept = folder.manifest.dirs
    # after _clear (or _clear_part) the manifest lists only what stays beside the new files
    folder.save(replace(folder.manifest, files=folder.manifest.files | files, dirs=kept | dirs))
    _move_into(work, folder.root, last=REPORTS)
    _remove_tree(folder.staging)
    folder.save(replace(folder.manifest, dirs=folder.manifest.dirs - {STAGING}))


def _discard(folder: _Folder) -> None:
    """After a failure: none of tinyprune's outputs stay, reports go first. Best effort."""
    try:
        _clear(folder)
        folder.save(replace(folder.manifest, dirs=folder.manifest.dirs - {STAGING}))
        if folder.manifest.created_folder and not folder.manifest.dirs and \
                not any(folder.root.iterdir()):
            folder.root.rmdir()
    except OSError as exc:
        log.debug("could not clean %s after a failed run: %s", folder.root, exc)


# --- space --------------------------------------------------------------------------------------

def free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _newest_file(top: Path) -> Path | None:
    """The file written last under ``top``: the one a full disk most likely cut short."""
    newest: tuple[int, Path] | None = None
    for here, _, names in os.walk(top):
        for name in names:
            st = _lstat(Path(here, name))
            if st is not None and (newest is None or st.st_mtime_ns > newest[0]):
                newest = (st.st_mtime_ns, Path(here, name))
    return None if newest is None else newest[1]


def _space_error(root: Path, exc: BaseException, work: Path | None = None) -> OutputError | None:
    """The one-line error for a run that failed because the disk is full, or None.

    ``work`` is the folder the run wrote into; its newest file names what was being written
    when the error carries no file name (a ``write`` that ran out of space).
    """
    free = free_bytes(root)
    shown = "" if free is None else f" ({free:,} bytes free)"
    fix = "free some space or choose an --out on another disk"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        newest = _newest_file(work) if work is not None and not exc.filename else None
        where = exc.filename or (root / newest.relative_to(work) if newest and work else None)
        writing = f" writing {where}" if where else ""
        return OutputError(f"no space left on device in {root}{shown}{writing}; {fix}")
    if not isinstance(exc, (CheckFailed, OSError)):
        return None
    if "No space left on device" in str(exc) or (free is not None and free < LOW_SPACE_BYTES):
        return OutputError(f"no space left on device in {root}{shown}: {exc}; {fix}")
    return None


@contextmanager
def scratch_tempdir(path: Path) -> Iterator[None]:
    """Temporary files of Python code (the TF converter) and subprocesses (the compilers) go to
    ``path`` while the block runs, so nothing is written outside the output folder."""
    saved, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(path)
    os.environ["TMPDIR"] = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env


@contextmanager
def output_folder(out: Path, *, force: bool = False, names: Sequence[str] = ()) -> Iterator[Path]:
    """Prepares ``out`` for a run and yields the folder to write the run's outputs into.

    On entry (before any work): the refusals of the module docstring, then tinyprune's previous
    outputs in ``out`` are deleted. When the block ends normally, everything written into the
    yielded folder moves into ``out``, reports last; on any exception (Ctrl-C included) nothing of
    it stays and the exception propagates (a full disk becomes one OutputError naming the path).

    Args:
        out: the output folder (created with its parents when missing).
        force: write into a non-empty folder tinyprune did not create (beside its files).
        names: the top-level names the run writes, checked before any work.

    Raises:
        OutputError: the folder cannot be used (exit 2); the message names the path at fault.
    """
    root, created = _make_root(out)
    with _locked(root):
        try:
            folder = _open(root, created, force, names)
        except OutputError:
            if created:
                shutil.rmtree(root, ignore_errors=True)  # made a moment ago: nothing else in it
            raise
        try:
            _clear(folder)
            (folder.staging / "out").mkdir(parents=True)
            (folder.staging / "tmp").mkdir()
            with scratch_tempdir(folder.staging / "tmp"):
                yield folder.staging / "out"
            _remove_tree(folder.staging / "tmp")
            _commit(folder, folder.staging / "out")
        except BaseException as exc:
            space = _space_error(folder.root, exc, folder.staging / "out")
            _discard(folder)
            if space is not None:
                raise space from exc
            raise


# --- one part of an existing folder -------------------------------------------------------------

def _clear_part(folder: _Folder, part: str) -> None:
    """Deletes tinyprune's files under ``part/`` (reports first) and the folders left empty."""
    m = folder.manifest
    prefix = part + "/"
    files = {f for f in m.files if f.startswith(prefix)}
    for rel in sorted(files, key=lambda r: _deletion_order(PurePosixPath(r).name)):
        _remove_file(folder.root / rel)
    dirs = {d for d in m.dirs if d == part or d.startswith(prefix)}
    kept = set()
    for rel in _deepest_first(dirs):
        try:
            (folder.root / rel).rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # it holds files tinyprune did not write
            kept.add(rel)
    folder.save(replace(m, files=m.files - files, dirs=(m.dirs - dirs) | kept))


def _open_part(out: Path, part: str) -> _Folder:
    root = _root_of(out)
    if not root.is_dir():
        raise OutputError(f"--out {out}: no such folder; name the folder of a tinyprune build")
    manifest = _read_manifest(root)
    if manifest is None:
        raise OutputError(f"--out {out} was not written by tinyprune (it has no {MANIFEST}); "
                          "name the folder of a tinyprune build")
    _check_taken(root, manifest, [part])
    _check_no_links(root, manifest)
    folder = _Folder(root, manifest)
    try:
        folder.save(replace(manifest, dirs=manifest.dirs | {STAGING}))
    except OSError as exc:
        raise _writable_error(root, exc) from None
    return folder


@contextmanager
def output_part(out: Path, part: str) -> Iterator[Path]:
    """Adds (or replaces) the sub-folder ``part`` of a folder tinyprune wrote, e.g. ``board/``
    (``tinyprune monitor``'s report of a real board) inside a build folder; the rest stays.

    The folder must carry tinyprune's manifest. Before any work tinyprune's previous ``part`` is
    deleted, its report first; the new one is staged in ``<out>/.tinyprune-partial/`` and moved
    into place at the end, report last. A failure leaves no ``part`` (so no earlier report of it
    remains beside a failure); a later run that replaces the whole folder deletes it too.

    Raises:
        OutputError: ``out`` is missing, not tinyprune's, or ``part`` is taken by a file it did
            not write (exit 2).
    """
    root = _root_of(out)
    with _locked(root) if root.is_dir() else _no_lock():
        folder = _open_part(out, part)
        try:
            _clear_part(folder, part)
            _remove_tree(folder.staging)
            (folder.staging / "out" / part).mkdir(parents=True)
            (folder.staging / "tmp").mkdir()
            with scratch_tempdir(folder.staging / "tmp"):
                yield folder.staging / "out" / part
            _remove_tree(folder.staging / "tmp")
            _commit(folder, folder.staging / "out")
        except BaseException as exc:
            space = _space_error(folder.root, exc, folder.staging / "out")
            try:
                _remove_tree(folder.staging)
                folder.save(replace(folder.manifest, dirs=folder.manifest.dirs - {STAGING}))
            except OSError as cleanup:
                log.debug("could not clean %s after a failed run: %s", folder.root, cleanup)
            if space is not None:
                raise space from exc
            raise


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


# --- single files -------------------------------------------------------------------------------

def _check_file_target(path: Path, force: bool, inputs: Sequence[Path]) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"--out {path}: folder {parent} does not exist; create it first or "
                          "choose another --out")
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _link_error(path)
    if any(os.path.samefile(path, p) for p in inputs if p.exists()):
        raise OutputError(f"--out {path} is the input model; choose another --out")
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"--out {path} exists and is a folder; tinyprune does not replace a "
                          "folder: remove it or choose another --out")
    if not force:
        raise OutputError(f"--out {path} exists; pass --force to replace it, or choose another "
                          "--out (tinyprune replaces an existing file only when told to)")


@contextmanager
def output_file(path: Path, *, force: bool = False,
                inputs: Sequence[Path] = ()) -> Iterator[Path]:
    """Checks ``path`` (before any work) and yields a temporary path with the same name, in a
    hidden folder beside it; when the block ends normally it replaces ``path`` in one rename.

    Rules: the parent folder must exist; a link, a folder or an input is never replaced; an
    existing file is replaced only with ``force``. Nothing is left behind on failure.

    Raises:
        OutputError: the path cannot be written as asked (exit 2).
    """
    _check_file_target(path, force, inputs)
    stage = path.parent / f".{path.name}{'.' + STAGING.lstrip('.')}"
    try:
        _remove_tree(stage)  # a killed earlier run's
        (stage / "tmp").mkdir(parents=True)
    except OSError as exc:
        raise _writable_error(path.parent, exc) from None
    try:
        with scratch_tempdir(stage / "tmp"):
            yield stage / path.name
        os.replace(stage / path.name, path)
    except BaseException as exc:
        space = _space_error(path.parent, exc, stage)
        if space is not None:
            raise space from exc
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
