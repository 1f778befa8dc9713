"""Installing vitviz: declared dependencies, their floors, and a wheel that carries the offline model."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import tomllib

from tests._apptest import ROOT

_REQUIREMENT = re.compile(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _floors(specs) -> dict[str, str]:
    floors = {}
    for spec in specs:
        match = _REQUIREMENT.match(spec)
        assert match, f"{spec!r} declares no floor (name>=version)"
        floors[match.group(1).lower().replace("_", "-")] = match.group(2)
    return floors


def _requirements() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    return _floors(line for line in lines if line)


def test_pyproject_declares_what_the_library_imports():
    declared = set(_floors(_pyproject()["dependencies"]))
    imported = set()
    for path in (ROOT / "vitviz").rglob("*.py"):
        imported |= set(re.findall(r"^\s*(?:import|from) (torch|torchvision|timm|plotly|PIL|numpy|safetensors|"
                                   r"huggingface_hub|streamlit|babel)\b", path.read_text(), re.M))
    names = {"PIL": "pillow", "huggingface_hub": "huggingface-hub"}
    assert "streamlit" not in imported, "the library never imports streamlit"
    assert {names.get(m, m) for m in imported} <= declared


def test_requirements_and_pyproject_declare_the_same_floors():
    project = _pyproject()
    declared = _floors(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        for name, floor in _floors(extra).items():
            assert declared.setdefault(name, floor) == floor, f"{name} has two floors in pyproject.toml"
    assert _requirements() == declared


def test_the_streamlit_floor_has_the_widget_arguments_the_app_uses():
    """``persist_state=`` came with Streamlit 1.59: an older Streamlit raises TypeError on the first page."""
    sources = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "vitviz_app").glob("*.py")]
    uses = "".join(path.read_text() for path in sources)
    floor = tuple(int(v) for v in _floors(_pyproject()["optional-dependencies"]["app"])["streamlit"].split("."))
    if "persist_state=" in uses:
        assert floor >= (1, 59)


def test_requirements_keep_the_torch_caps():
    text = (ROOT / "requirements.txt").read_text()
    assert "torch>=2.1,<=2.14.1" in text and "torchvision>=0.16,<=0.29.1" in text


@pytest.mark.slow
def test_the_wheel_carries_the_offline_model_and_the_samples(tmp_path):
    """A wheel built from pyproject.toml holds every module, the bundled model, its config and the samples."""
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", "vitviz"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:  # a copy, so that building leaves no build/ or egg-info in the checkout
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("vitviz-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    package_files = {name for name in tracked if name.startswith("vitviz/")}
    assert {"vitviz/assets/shapes_vit.safetensors", "vitviz/assets/shapes_vit.json"} <= names
    assert {n for n in package_files if n.startswith("vitviz/assets/samples/")} <= names
    assert package_files <= names, sorted(package_files - names)
    assert not any(n.startswith(("vitviz_app/", "tests/")) for n in names), "only the library is installed"
    required = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    core = [r for r in required if "extra ==" not in r]
    assert _floors(core) == _floors(_pyproject()["dependencies"])
