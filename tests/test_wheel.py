"""A normal install has suites: the registry ships in the wheel, and is looked up in a documented order."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bench import registry
from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_lookup_order(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "env").mkdir()
    (tmp_path / "registry").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADBENCH_REGISTRY", str(tmp_path / "env"))
    assert registry.find_registry_dir(tmp_path / "mine") == tmp_path / "mine"
    assert registry.find_registry_dir() == tmp_path / "env"
    monkeypatch.delenv("GRADBENCH_REGISTRY")
    assert registry.find_registry_dir() == tmp_path / "registry"
    (tmp_path / "registry").rmdir()
    packaged = registry.PACKAGED_DIR if registry.PACKAGED_DIR.is_dir() else registry.CHECKOUT_DIR
    assert registry.find_registry_dir() == packaged
    with pytest.raises(registry.GradBenchError, match="--registry"):
        registry.find_registry_dir(tmp_path / "nope")


def test_registry_flag_lists_that_folders_suites(tmp_path, monkeypatch, capsys):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "mine.toml").write_text((ROOT / "registry" / "suites" / "default.toml").read_text())
    monkeypatch.setattr(registry, "REGISTRY_DIR", registry.REGISTRY_DIR)  # restored after the test
    assert main(["--registry", str(tmp_path), "list", "suites"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["mine"]


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_lists_the_suites(tmp_path):
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    # without PYTHONPATH: the checkout on it would make pip think gradbench is installed already
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRADBENCH_REGISTRY")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(wheels)], check=True, cwd=tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    (wheel,) = wheels.glob("gradbench-*.whl")
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", str(wheel)], check=True, env=env,
                   cwd=tmp_path)
    # the dependencies (torch, pandas…) come from this interpreter's site-packages, not a download;
    # a path in a .pth file is appended after the venv's own, so the wheel's bench is the one imported
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([venv / "bin" / "bench", "list", "suites"], check=True, cwd=tmp_path, env=env,
                         capture_output=True, text=True).stdout
    listed = {line.split()[0] for line in out.splitlines()}
    assert {p.stem for p in (ROOT / "registry" / "suites").glob("*.toml")} == listed
    where = subprocess.run([venv / "bin" / "python", "-c", "import bench.registry as r; print(r.REGISTRY_DIR)"],
                           check=True, cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert where.strip().startswith(str(site))
