"""The generator as a whole: determinism, the manifest written last, clear errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from pathlib import Path

import pytest

from s3tr.demo import DemoPaths, generate_season, is_complete
from s3tr.errors import ConfigError, WorkdirError

TINY = {"n_parcels": 30, "area_size_m": 1500.0, "start": dt.date(2025, 6, 1), "end": dt.date(2025, 6, 14)}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = generate_season(tmp_path / "a", seed=7, **TINY)
    b = generate_season(tmp_path / "b", seed=7, workers=1, **TINY)  # thread count must not matter
    da, db = _digests(a.root), _digests(b.root)
    assert da == db
    assert sum(name.endswith(".tif") for name in da) == 11 * len(json.loads(a.manifest.read_text())["dates"])
    c = generate_season(tmp_path / "c", seed=8, **TINY)
    dc = _digests(c.root)
    assert dc["parcels.gpkg"] != da["parcels.gpkg"]


def test_manifest(season: DemoPaths) -> None:
    m = json.loads(season.manifest.read_text())
    assert m["seed"] == 3 and m["campaign"] == 2025 and m["tile"] == "31TBM"
    assert m["counts"]["acquisitions"] == len(m["dates"]) and m["dates"] == sorted(m["dates"])
    assert m["dates"][0] >= m["start"] and m["dates"][-1] <= m["end"]
    gaps = [
        (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days for a, b in itertools.pairwise(m["dates"])
    ]
    assert set(gaps) <= {2, 3, 5}
    assert sum(m["counts"]["scenarios"].values()) == m["counts"]["parcels"]
    assert is_complete(season.root)
    # Written last: nothing in the season is newer than the manifest.
    newest = max(p.stat().st_mtime_ns for p in season.root.rglob("*") if p.is_file() and p != season.manifest)
    assert season.manifest.stat().st_mtime_ns >= newest


def test_interrupted_generation_leaves_no_manifest(tmp_path: Path) -> None:
    root = tmp_path / "cut"
    generate_season(root, seed=1, **TINY)
    assert is_complete(root)

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "imagery" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_season(root, seed=1, progress=stop, **TINY)
    assert not is_complete(root)
    assert not DemoPaths.under(root).manifest.exists()


def test_unwritable_workdir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkdirError, match="--workdir"):
        generate_season(blocker / "season", **TINY)


def test_area_outside_the_tile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="31TBM"):
        generate_season(tmp_path / "far", centre=(150_000.0, 5_160_000.0), **TINY)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": dt.date(2025, 6, 14), "end": dt.date(2025, 6, 1)}, "swap"),
        ({"area_size_m": 300.0}, "500 m"),
        ({"n_parcels": 0}, "at least 1 parcel"),
    ],
)
def test_bad_parameters_are_config_errors(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_season(tmp_path / "bad", **{**TINY, **overrides})


def test_a_single_day_season_has_its_acquisition(tmp_path: Path) -> None:
    day = dt.date(2025, 6, 3)
    paths = generate_season(tmp_path / "one", **{**TINY, "start": day, "end": day})
    assert json.loads(paths.manifest.read_text())["dates"] == [day.isoformat()]
