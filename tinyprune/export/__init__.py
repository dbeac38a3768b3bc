"""``tinyprune export``: an int8 model as a self-contained C library for a user's firmware.

The library holds the generated model (``model.c``, ``weights.c`` and their headers), only the
runtime kernels it uses with the runtime headers, a public header ``<name>.h`` (sizes, every
tensor's shape and quantization, ``<name>_invoke``), a small ``<name>.c`` (a weak default
``tp_timer_now`` and compile-time checks that the header matches the model), a README with the
three lines to call it, and the build glue of one format (registry :data:`FORMATS`):

- ``cmake``: ``CMakeLists.txt`` with a static library target;
- ``make``: ``<name>.mk``, a fragment that builds ``lib<name>.a`` with the user's compiler;
- ``arduino``: an Arduino library (``library.properties``, everything in ``src/``, an example
  sketch in ``examples/<name>_example/``).

Python computes every name and number; the templates (``templates/export/``) only substitute.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyprune import __version__
from tinyprune.codegen import generate
from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board
from tinyprune.firmware.paths import runtime_dir, template_environment
from tinyprune.ir.graph import Graph
from tinyprune.plan import Plan, plan

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_NAMES = ("model", "weights", "main")
MODEL_FILES = ("model.c", "model.h", "weights.c", "weights.h")


@dataclass(frozen=True)
class ExportFormat:
    """One kind of library: where its files go and which glue files it gets.

    Attributes:
        title: for the README ("a CMake library").
        layout: relative destination of a library file from its kind (``model``, ``kernel``,
            ``runtime_header``, ``public_header``, ``library_source``) and file name.
        glue: (template under ``templates/export/``, destination with ``{name}``) pairs.
        outputs: the top-level names the format writes (checked before any work).
    """

    name: str
    title: str
    layout: Callable[[str, str], str]
    glue: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...]


def _tree(kind: str, file: str) -> str:
    folder = {"model": "src", "library_source": "src", "public_header": "include",
              "kernel": "runtime/kernels", "runtime_header": "runtime/include"}[kind]
    return f"{folder}/{file}"


def _flat(kind: str, file: str) -> str:
    return f"src/{file}"  # Arduino compiles src/ with src/ as the only include folder


FORMATS: dict[str, ExportFormat] = {
    "cmake": ExportFormat("cmake", "a CMake library", _tree,
                          (("README.md.j2", "README.md"), ("CMakeLists.txt.j2", "CMakeLists.txt")),
                          ("README.md", "CMakeLists.txt", "include", "src", "runtime")),
    "make": ExportFormat("make", "a Makefile fragment", _tree,
                         (("README.md.j2", "README.md"), ("library.mk.j2", "{name}.mk")),
                         ("README.md", "{name}.mk", "include", "src", "runtime")),
    "arduino": ExportFormat("arduino", "an Arduino library", _flat,
                            (("README.md.j2", "README.md"),
                             ("library.properties.j2", "library.properties"),
                             ("example.ino.j2", "examples/{name}_example/{name}_example.ino")),
                            ("README.md", "library.properties", "src", "examples")),
}


@dataclass(frozen=True)
class Exported:
    """What :func:`export_library` wrote (paths relative to its folder)."""

    format: str
    name: str
    files: tuple[str, ...]
    kernels: tuple[str, ...]


def library_name(text: str, where: str = "--name") -> str:
    """A valid library name: a lowercase C identifier that clashes with no generated file.

    Raises:
        UsageError: the name is not one.
    """
    if not _NAME.match(text) or text in RESERVED_NAMES or text.startswith("tp_"):
        raise UsageError(f"{where}: expected a lowercase C identifier (a-z, 0-9, _; starting with "
                         f"a letter; not {', '.join(RESERVED_NAMES)} or tp_*), received {text!r}")
    return text


def default_name(stem: str) -> str:
    """The library name made from a model file's stem (``kws-ref.v2`` -> ``kws_ref_v2``)."""
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower()).strip("_") or "model"
    name = name if name[0].isalpha() else f"m_{name}"
    return f"{name}_lib" if name in RESERVED_NAMES or name.startswith("tp_") else name[:63]


def format_outputs(fmt: str, name: str) -> tuple[str, ...]:
    """The top-level names ``fmt`` writes for library ``name``."""
    return tuple(n.format(name=name) for n in _format(fmt).outputs)


def _format(fmt: str) -> ExportFormat:
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, received {fmt!r}")
    return FORMATS[fmt]


def _float_literal(value: float) -> str:
    return f"{value!r}f"


def _tensors(graph: Graph) -> list[dict[str, Any]]:
    rows = []
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        offset = 0
        for k, ti in enumerate(indices):
            t = graph.tensor(ti)
            per_tensor = t.quant is not None and len(t.quant.scale) == 1 and t.dtype != "float32"
            rows.append({"role": role, "index": k, "name": t.name, "dtype": t.dtype,
                         "shape": list(t.shape), "offset": offset, "nbytes": t.nbytes,
                         "end": offset + t.nbytes,
                         "scale": _float_literal(t.scale) if per_tensor else None,
                         "scale_text": repr(t.scale) if per_tensor else "-",
                         "zero_point": t.zero_point if per_tensor else None})
            offset += t.nbytes
    return rows


def _context(planned: Plan, board: Board, fmt: ExportFormat, name: str,
             source_name: str) -> dict[str, Any]:
    graph = planned.graph
    return {
        "banner": f"Generated by tinyprune {__version__} from {source_name} for {board.name}; "
                  "do not edit.",
        "version": __version__,
        "library_version": __version__ if re.match(r"^\d+\.\d+\.\d+$", __version__) else "0.0.0",
        "name": name, "macro": name.upper(), "source": source_name,
        "board": board.name, "core": board.core, "cpu_flags": " ".join(board.cpu_flags),
        "format": fmt.name, "format_title": fmt.title, "example": f"{name}_example",
        "layers": len(planned.code_ops), "macs": f"{sum(p.call.macs for p in planned.code_ops):,}",
        "weight_bytes": f"{planned.weight_bytes:,}",
        "arena_bytes": max(planned.memory.arena_bytes, 16) + planned.memory.scratch_bytes,
        "input_bytes": sum(graph.tensor(i).nbytes for i in graph.inputs),
        "output_bytes": sum(graph.tensor(i).nbytes for i in graph.outputs),
        "tensors": _tensors(graph),
    }


def _library_files(planned: Plan, scratch: Path, name: str, source_name: str,
                   env: Any, ctx: dict[str, Any]) -> list[tuple[str, str, Path]]:
    """(kind, file name, source path) of every library file, model sources generated."""
    project = generate(planned, scratch, model_name=Path(source_name).stem,
                       source_name=source_name)
    (scratch / f"{name}.h").write_text(env.get_template("export/api.h.j2").render(ctx))
    (scratch / f"{name}.c").write_text(env.get_template("export/library.c.j2").render(ctx))
    files = [("model", f, scratch / f) for f in MODEL_FILES]
    files += [("public_header", f"{name}.h", scratch / f"{name}.h"),
              ("library_source", f"{name}.c", scratch / f"{name}.c")]
    files += [("kernel", k.name, k) for k in project.kernel_sources]
    files += [("runtime_header", h.name, h)
              for h in sorted((runtime_dir() / "include").glob("*.h"))]
    return files


def export_library(graph: Graph, board: Board, out_dir: Path, *, fmt: str, name: str,
                   source_name: str) -> Exported:
    """Writes the library for ``graph`` (planned for ``board``) into ``out_dir``.

    Args:
        graph: the int8 model.
        board: the board it is planned for (the kernel choice follows its DSP extension).
        out_dir: an empty folder (the staging folder of :func:`tinyprune.outputs.output_folder`).
        fmt: a key of :data:`FORMATS`.
        name: the library name (:func:`library_name`).
        source_name: the model file's name, for banners and the README.

    Raises:
        UsageError: unknown format, a bad name; UnsupportedError: an op without a kernel.
    """
    form = _format(fmt)
    library_name(name)
    planned = plan(graph, dsp=board.dsp)
    env = template_environment()
    ctx = _context(planned, board, form, name, source_name)
    scratch = Path(tempfile.mkdtemp(prefix="export-"))
    try:
        written = []
        for kind, file, src in _library_files(planned, scratch, name, source_name, env, ctx):
            rel = form.layout(kind, file)
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out_dir / rel)
            written.append((kind, rel))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    glue = [dest.format(name=name) for _, dest in form.glue]
    ctx["sources"] = sorted(rel for kind, rel in written if rel.endswith(".c"))
    ctx["files"] = sorted([*(rel for _, rel in written), *glue])
    for (template, _), dest in zip(form.glue, glue, strict=True):
        (out_dir / dest).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / dest).write_text(env.get_template(f"export/{template}").render(ctx))
    kernels = tuple(sorted(Path(rel).name for kind, rel in written if kind == "kernel"))
    return Exported(fmt, name, tuple(ctx["files"]), kernels)
