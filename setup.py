"""Ship the top-level registry/ inside the package (as bench/_registry) when a wheel is built.

registry/ stays where users, docs and the Makefile expect it; bench.registry.find_registry_dir
finds the packaged copy when no registry/ is at hand (an installed wheel). Everything else about
the build is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRegistry(build_py):
    def run(self):
        super().run()
        source = Path(__file__).resolve().parent / "registry"
        target = Path(self.build_lib) / "bench" / "_registry"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithRegistry})
