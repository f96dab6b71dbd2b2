"""The files users edit first live at the top of the repository (constitution/, prompts/), and the
wheel ships them: a wheel built with `pip wheel --no-deps .` holds them, an installed wheel finds
them, and pyproject lists every package of the source tree."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_package_of_the_source_tree():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.relative_to(ROOT).parts) for p in (ROOT / "cai").rglob("*")
               if p.is_dir() and p.name != "__pycache__"}  # a data folder too: setuptools warns where one is not listed
    assert {"cai", *folders, "cai.data.constitution", "cai.data.prompts"} == listed


@pytest.mark.slow
def test_a_built_wheel_ships_the_constitutions_and_prompts_and_finds_them_installed(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("cai-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in [*(ROOT / "constitution").iterdir(), *(ROOT / "prompts").iterdir()]:
        assert f"cai/data/{source.parent.name}/{source.name}" in names
    assert "cai/data/project/pipeline.yaml" in names

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)  # what an install puts in site-packages
    found = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import cai.data as d; "
                            "print(d.DEFAULT_CONSTITUTION); print(d.DEMO_PROMPTS.read_text()[:1])", str(site)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[0] == str(site / "cai" / "data" / "constitution" / "default.yaml")
