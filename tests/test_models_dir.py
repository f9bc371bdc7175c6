"""Where the shipped models are found: the checkout's models/ folder, or an installed wheel's copy."""

from __future__ import annotations

import sysconfig
import tomllib
from pathlib import Path

import pytest

import s3tr.settings as settings_module
from s3tr.settings import Settings, find_models_dir

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_model_file_goes_into_the_wheel():
    """A model added to models/ but not to the wheel's data files would be missing after `pip install .`."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    data_files = config["tool"]["setuptools"]["data-files"]
    shipped = {Path(f) for files in data_files.values() for f in files}
    on_disk = {p.relative_to(REPO) for p in (REPO / "models").rglob("*") if p.is_file() and p.suffix != ".md"}
    assert shipped == on_disk
    for target, files in data_files.items():
        # Installed as <prefix>/share/s3tr/models/<the file's folder under models/>.
        assert all(Path(target) == Path("share/s3tr") / Path(f).parent for f in files), target


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """A process run outside any checkout: no ./models, and the package imported from site-packages."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings_module, "_PACKAGE_ROOT", tmp_path / "site-packages" / "s3tr")
    return tmp_path


@pytest.fixture
def prefix(nowhere, monkeypatch):
    """The environment's installation prefix (where a wheel's data files go), empty."""
    prefix = nowhere / "venv"
    real = sysconfig.get_path
    monkeypatch.setattr(
        sysconfig, "get_path", lambda name, *a, **k: str(prefix) if name == "data" else real(name, *a, **k)
    )
    return prefix


def test_an_installed_wheel_finds_its_models_outside_the_checkout(prefix):
    assert find_models_dir(Settings()) is None
    (prefix / "share" / "s3tr" / "models" / "crop_group").mkdir(parents=True)
    assert find_models_dir(Settings()) == prefix / "share" / "s3tr" / "models"


def test_the_checkout_and_the_environment_variable_come_first(nowhere, prefix, monkeypatch):
    (prefix / "share" / "s3tr" / "models").mkdir(parents=True)
    (nowhere / "models").mkdir()
    assert find_models_dir(Settings()) == nowhere / "models"
    chosen = nowhere / "elsewhere"
    chosen.mkdir()
    monkeypatch.setenv("S3TR_MODELS_DIR", str(chosen))
    assert find_models_dir(Settings()) == chosen


def test_a_models_folder_without_the_model_does_not_hide_the_shipped_one(nowhere, prefix):
    (prefix / "share" / "s3tr" / "models" / "crop_group").mkdir(parents=True)
    (prefix / "share" / "s3tr" / "models" / "crop_group" / "model.joblib").touch()
    (nowhere / "models").mkdir()  # some other project's models/ in the current directory
    assert find_models_dir(Settings()) == nowhere / "models"
    found = find_models_dir(Settings(), holding="crop_group/model.joblib")
    assert found == prefix / "share" / "s3tr" / "models"
