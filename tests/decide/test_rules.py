"""Rule sets: shipped YAML files validate, and invalid ones are refused with a clear message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from s3tr.decide.rules import RULESET_DIR, RuleSet, available_rulesets, load_ruleset, load_ruleset_file
from s3tr.errors import ConfigError


def test_shipped_rulesets_validate_and_are_unique() -> None:
    sets = available_rulesets()
    assert {rs.campaign for rs in sets} >= {2023, 2025}
    assert len({rs.version for rs in sets}) == len(sets)


def test_2023_correction_window_is_16_may_to_20_september() -> None:
    rs = load_ruleset(2023)
    assert rs.correction_window.start == date(2023, 5, 16)
    assert rs.correction_window.end == date(2023, 9, 20)
    assert rs.correction_window.contains(date(2023, 9, 20))
    assert not rs.correction_window.contains(date(2023, 9, 21))


def test_2025_activity_window_and_min_pixels() -> None:
    rs = load_ruleset(2025)
    assert (rs.activity_window.start, rs.activity_window.end) == (date(2025, 4, 1), date(2025, 10, 31))
    assert rs.evidence.min_pixels == 8
    assert rs.aid_rate("min_activity") > 0
    assert rs.campaign == 2025 and rs.version.startswith("fr-2025")


def test_every_field_is_described() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, RuleSet.__mro__[1]):
                missing += walk(ann)
        return missing

    assert walk(RuleSet) == []


def _raw(campaign: int = 2025) -> dict:
    return yaml.safe_load((RULESET_DIR / f"fr-{campaign}.yaml").read_text(encoding="utf-8"))


def _write(tmp_path: Path, raw: dict, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_unknown_field_is_refused_with_file_name(tmp_path: Path) -> None:
    raw = _raw()
    raw["crop_group"]["p_gren"] = 0.9
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"x\.yaml.*p_gren|p_gren"):
        load_ruleset_file(path)


def test_inconsistent_thresholds_are_refused(tmp_path: Path) -> None:
    raw = _raw()
    raw["crop_group"]["p_red"] = 0.9  # above p_green: a parcel could be both
    with pytest.raises(ConfigError, match="p_red"):
        load_ruleset_file(_write(tmp_path, raw))
    raw = _raw()
    raw["activity_window"] = {"start": "2025-10-31", "end": "2025-04-01"}
    with pytest.raises(ConfigError, match="before it starts"):
        load_ruleset_file(_write(tmp_path, raw))
    raw = _raw()
    raw["fallow_protected_period"] = {"start": "2024-05-01", "end": "2024-06-09"}
    with pytest.raises(ConfigError, match="not inside campaign"):
        load_ruleset_file(_write(tmp_path, raw))


def test_regional_ruleset_overrides_national(tmp_path: Path) -> None:
    national = _raw()
    regional = _raw()
    regional.update(region="86", version="fr-2025-86.1")
    regional["fallow_protected_period"] = {"start": "2025-05-15", "end": "2025-06-23"}
    _write(tmp_path, national, "fr-2025.yaml")
    _write(tmp_path, regional, "fr-2025-86.yaml")
    assert load_ruleset(2025, "86", directory=tmp_path).version == "fr-2025-86.1"
    assert load_ruleset(2025, "79", directory=tmp_path).version == national["version"]
    assert load_ruleset(2025, directory=tmp_path).version == national["version"]


def test_unknown_campaign_says_how_to_fix() -> None:
    with pytest.raises(ConfigError, match=r"campaign 1999"):
        load_ruleset(1999)
