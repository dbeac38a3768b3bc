"""Copies runtime/, templates/ and boards/ into the wheel as tinyprune/_data/ (see paths.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("runtime", "templates", "boards")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "tinyprune" / "_data"
        for part in DATA:
            shutil.rmtree(dest / part, ignore_errors=True)
            shutil.copytree(root / part, dest / part,
                            ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.so"))


setup(cmdclass={"build_py": BuildWithData})
