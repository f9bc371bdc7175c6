"""Versioned rule sets: the thresholds and windows of one campaign (and optionally one region).

A rule set is a YAML file in ``s3tr/decide/rulesets/`` validated by :class:`RuleSet`. Every
decision records the rule set's ``version``; changing a value means publishing a new version.
A regional rule set (``region: "86"``) replaces the national one of the same campaign for that
department; it is a complete file, so that what applies is always readable in one place.
"""

from __future__ import annotations

import logging
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from s3tr.errors import ConfigError

__all__ = [
    "RULESET_DIR",
    "ActivityRules",
    "BareSoilRules",
    "CropGroupRules",
    "DateWindow",
    "EvidenceRules",
    "MowingRules",
    "ReviewRules",
    "RuleSet",
    "available_rulesets",
    "load_ruleset",
    "load_ruleset_file",
]

logger = logging.getLogger(__name__)

RULESET_DIR = Path(__file__).with_name("rulesets")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateWindow(_Strict):
    """An inclusive range of calendar dates."""

    start: date = Field(description="First day of the window (inclusive).")
    end: date = Field(description="Last day of the window (inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> DateWindow:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self

    def contains(self, day: date) -> bool:
        """Whether ``day`` falls inside the window (bounds included)."""
        return self.start <= day <= self.end


class EvidenceRules(_Strict):
    """When the satellite evidence is sufficient to conclude at all."""

    min_valid_observations: int = Field(
        ge=1, description="Fewer clear observations than this in the season: orange not_enough_observations."
    )
    max_cloudy_gap_days: int = Field(
        ge=1,
        description="A gap between clear observations longer than this (days): no red, and no green that "
        "rests on the absence of an event (orange cloudy_gap_too_long).",
    )
    min_pixels: int = Field(
        ge=1, description="Full 20 m pixels after the inward buffer below which a parcel is too_small."
    )


class ActivityRules(_Strict):
    """Minimum agricultural activity on grassland."""

    min_confidence: float = Field(
        ge=0, le=1, description="Confidence of the activity marker's verdict needed for green or red."
    )


class MowingRules(_Strict):
    """How far mowing detections are trusted."""

    min_confidence: float = Field(
        ge=0, le=1, description="Confidence above which a detected mowing counts as proven (green or red)."
    )
    edge_margin_days: int = Field(
        default=10,
        ge=0,
        le=30,
        description="A mowing proves a breach of a period only when its interval lies this many days inside "
        "it: the true date can fall a few days outside the interval between two clear observations.",
    )
    confidence_red: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Confidence a detected mowing needs to prove a breach (red: fallow mown in its protected "
        "period); between min_confidence and this it is orange. A red is judged where cuts are rare, so a "
        "false cut weighs more there than among the meadows the confidence was learned on "
        "(None: min_confidence).",
    )

    @property
    def red_confidence(self) -> float:
        """The confidence a mowing needs for a red (``confidence_red``, else ``min_confidence``)."""
        return self.min_confidence if self.confidence_red is None else self.confidence_red

    @model_validator(mode="after")
    def _ordered(self) -> MowingRules:
        if self.confidence_red is not None and self.confidence_red < self.min_confidence:
            raise ValueError(
                f"confidence_red ({self.confidence_red}) must not be below "
                f"min_confidence ({self.min_confidence})"
            )
        return self


class CropGroupRules(_Strict):
    """Declared crop group confirmed by the crop classifier."""

    p_green: float = Field(ge=0, le=1, description="Green when the declared group has probability >= this.")
    p_red: float = Field(
        ge=0, le=1, description="Red needs the declared group's probability <= this (and another >= p_other)."
    )
    p_other: float = Field(
        ge=0, le=1, description="Red needs another group predicted with probability >= this."
    )
    min_training_parcels: int = Field(
        default=0,
        ge=0,
        description="A declared group with fewer training parcels in the crop model is never a red, only "
        "orange declared_group_rare_in_training: the model's probabilities carry its training mix, where a "
        "rare group is a priori unlikely, so they understate a rare group that a farmer declares "
        "(0: unused).",
    )
    max_ndvi_spread: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Above this within-parcel NDVI standard deviation (the evidence's ``homogeneity``, lower "
        "is more homogeneous) a red becomes orange heterogeneous_parcel: the parcel may carry several "
        "crops (None: unused).",
    )
    similar_groups: list[list[str]] = Field(
        default_factory=list,
        description="Families of RPG groups the satellite cannot tell apart reliably (e.g. soft wheat, "
        "barley and other cereals): a prediction in the declared group's family is never a red, only "
        "orange crop_group_similar.",
    )

    idle_groups: list[str] = Field(
        default_factory=list,
        description="Groups that mean the land is not farmed (e.g. the group of SNE, land temporarily "
        "unfarmed): such a prediction is never a red when the activity marker saw farming on the parcel "
        "(mowing, grazing, tillage), only orange crop_idle_but_active.",
    )

    def similar(self, a: str | None, b: str | None) -> bool:
        """Whether groups ``a`` and ``b`` (normalised codes) are in one family of ``similar_groups``."""
        return a is not None and b is not None and any(a in f and b in f for f in self.similar_groups)

    @model_validator(mode="after")
    def _consistent(self) -> CropGroupRules:
        if self.p_red >= self.p_green:
            raise ValueError(f"p_red ({self.p_red}) must be below p_green ({self.p_green})")
        return self


class BareSoilRules(_Strict):
    """Bare soil / ploughing detections."""

    confidence_red: float = Field(
        ge=0, le=1, description="Bare soil with confidence >= this is proven (red on grassland or fallow)."
    )
    confidence_orange: float = Field(
        ge=0, le=1, description="Bare soil with confidence >= this (but below confidence_red) is orange."
    )

    @model_validator(mode="after")
    def _ordered(self) -> BareSoilRules:
        if self.confidence_orange > self.confidence_red:
            raise ValueError("confidence_orange must not exceed confidence_red")
        return self


class AidRates(_Strict):
    """Indicative aid at stake per control, used only to rank the review queue."""

    min_activity: float = Field(ge=0, description="EUR/ha at stake when min_activity fails.")
    crop_group: float = Field(ge=0, description="EUR/ha at stake when crop_group fails.")
    grassland_not_ploughed: float = Field(ge=0, description="EUR/ha at stake when grassland is ploughed.")
    fallow: float = Field(ge=0, description="EUR/ha at stake when the fallow control fails.")


class ReviewRules(_Strict):
    """Parameters of the review queue."""

    case_deadline_days: int = Field(ge=1, description="Days the DDT has to settle a new orange case.")


class RuleSet(_Strict):
    """The thresholds and windows of one campaign (and optionally one region).

    Loaded from YAML by :func:`load_ruleset`; every field is documented in the schema
    (``RuleSet.model_json_schema()``).
    """

    version: str = Field(
        min_length=1, description="Unique version recorded in every decision, e.g. fr-2025.1."
    )
    campaign: int = Field(ge=2015, le=2100, description="CAP campaign (declaration year).")
    region: str | None = Field(
        default=None, description="Department code this rule set is for ('86', '2A'); None for national."
    )
    description: str = Field(default="", description="Free text shown to operators.")
    activity_window: DateWindow = Field(description="Window in which grassland activity must be observed.")
    fallow_protected_period: DateWindow = Field(
        description="Period in which fallow land may be neither mowed nor tilled."
    )
    correction_window: DateWindow = Field(
        description="Droit à l'erreur: farmers may correct their declaration without penalty in this window."
    )
    evidence: EvidenceRules = Field(description="Sufficiency of the satellite evidence.")
    activity: ActivityRules = Field(description="Minimum activity control.")
    mowing: MowingRules = Field(description="Trust in mowing detections.")
    crop_group: CropGroupRules = Field(description="Crop group control.")
    bare_soil: BareSoilRules = Field(description="Trust in bare-soil detections.")
    aid_rates_eur_per_ha: AidRates = Field(description="Indicative aid rate per control (queue priority).")
    review: ReviewRules = Field(description="Review queue parameters.")

    @model_validator(mode="after")
    def _windows_in_campaign(self) -> RuleSet:
        for name in ("activity_window", "fallow_protected_period"):
            window: DateWindow = getattr(self, name)
            if window.start.year != self.campaign or window.end.year != self.campaign:
                raise ValueError(
                    f"{name} {window.start}..{window.end} is not inside campaign {self.campaign}"
                )
        return self

    def aid_rate(self, control: str) -> float:
        """Indicative aid rate (EUR/ha) of a control id."""
        return float(getattr(self.aid_rates_eur_per_ha, control))


def load_ruleset_file(path: str | Path) -> RuleSet:
    """Read and validate one rule-set YAML file.

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, or does not match the schema (the message names
        the file and the offending fields).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read rule set {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"rule set {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"rule set {path} must be a YAML mapping, got {type(raw).__name__}")
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"rule set {path} is invalid (fix the fields below):\n{exc}") from exc


@lru_cache(maxsize=8)
def _scan(directory: str) -> tuple[tuple[Path, RuleSet], ...]:
    found = []
    for path in sorted(Path(directory).glob("*.yaml")):
        found.append((path, load_ruleset_file(path)))
    versions = [rs.version for _, rs in found]
    dupes = {v for v in versions if versions.count(v) > 1}
    if dupes:
        raise ConfigError(f"rule-set versions used twice in {directory}: {sorted(dupes)}")
    return tuple(found)


def available_rulesets(directory: str | Path | None = None) -> list[RuleSet]:
    """Every rule set shipped in ``directory`` (default: the package's ``rulesets/``)."""
    return [rs for _, rs in _scan(str(directory or RULESET_DIR))]


def load_ruleset(campaign: int, region: str | None = None, *, directory: str | Path | None = None) -> RuleSet:
    """The rule set of a campaign, regional when one exists for ``region``, else national.

    Parameters
    ----------
    campaign
        CAP campaign year, e.g. 2025.
    region
        Department code (``"86"``); ``None`` for the national rule set.
    directory
        Where to look (default: the rule sets shipped with s3tr).

    Raises
    ------
    ConfigError
        When no rule set exists for the campaign, or several match.
    """
    candidates = [rs for rs in available_rulesets(directory) if rs.campaign == int(campaign)]
    if region is not None:
        regional = [rs for rs in candidates if rs.region == str(region)]
        if len(regional) > 1:
            raise ConfigError(f"several rule sets for campaign {campaign}, region {region}")
        if regional:
            return regional[0]
    national = [rs for rs in candidates if rs.region is None]
    if len(national) != 1:
        known = sorted({(rs.campaign, rs.region or "national") for rs in available_rulesets(directory)})
        raise ConfigError(
            f"no unique national rule set for campaign {campaign} (found {len(national)}); "
            f"known: {known}. Add s3tr/decide/rulesets/fr-{campaign}.yaml"
        )
    return national[0]
