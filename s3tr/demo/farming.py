"""What happens on each parcel: declarations, crop calendars, management events, non-compliance.

Every parcel gets a *declared* crop code (the regional mix, biased by farm type) and a *true*
land use with dated events (sowing, harvest, stubble tillage, mowing, grazing, ploughing). Most
parcels are compliant (``scenario="ok"``); a known share carries one deliberate non-compliance:

- ``grassland_ploughed``: declared permanent grassland (group 18) ploughed in spring, then re-sown
  to grass or sown to maize -> ``grassland_not_ploughed`` red (and ``crop_group`` red if maize);
- ``no_activity``: declared grassland (groups 18/19) never mowed nor grazed -> ``min_activity`` red;
- ``wrong_crop``: an arable crop declared, another grown (e.g. BTH declared, maize grown) ->
  ``crop_group`` red;
- ``abandoned``: grassland or arable land left to weeds and shrubs -> ``min_activity`` red on
  grassland, ``crop_group`` red on arable land (the true code becomes SNE, group 28);
- ``fallow_mowed``: declared fallow (group 11) mown inside the protected period -> ``fallow`` red.

The controls (``truth/expected_controls.csv``) are what a perfect system would conclude from the
truth: ``min_activity`` on grassland (groups 18, 19: at least one mowing, grazing or ploughing),
``crop_group`` on every parcel (true group equals declared group), ``grassland_not_ploughed`` on
permanent grassland (group 18) and ``fallow`` on fallow (group 11: no mowing between
:data:`FALLOW_PROTECTED` dates and no crop grown).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from s3tr.demo.crops import CODES, CROP_MIX, FALLOW_GROUPS, GRASSLAND_GROUPS, crop

__all__ = [
    "FALLOW_PROTECTED",
    "SCENARIOS",
    "ParcelPlan",
    "expected_controls",
    "plan_parcels",
    "truth_events",
    "truth_parcels",
]

SCENARIOS = ("ok", "grassland_ploughed", "no_activity", "wrong_crop", "abandoned", "fallow_mowed")
# Share of all parcels per non-compliance scenario (about 6 % in total).
SCENARIO_SHARE = {
    "grassland_ploughed": 0.010,
    "no_activity": 0.015,
    "wrong_crop": 0.020,
    "abandoned": 0.008,
    "fallow_mowed": 0.007,
}
# Fallow must not be mown or mulched for 40 consecutive days from 1 May (French BCAE rule for
# fallow; the campaign's rule set holds the real dates). (month, day) bounds, inclusive.
FALLOW_PROTECTED = ((5, 1), (6, 9))

WRONG_CROP = {
    "BTH": ("MIS", "TRN"),
    "ORH": ("MIS", "TRN"),
    "CZH": ("BTH", "MIS"),
    "TRN": ("BTH", "MIS"),
    "MIS": ("BTH", "TRN"),
}
ARABLE = ("BTH", "ORH", "BDH", "TTH", "CZH", "TRN", "MIS", "MIE", "PPR")


@dataclass
class ParcelPlan:
    """The true story of one parcel in the campaign year. Days are days of year (int).

    ``mowings`` holds ``(day, depth, recovery_days)``, ``grazings`` ``(start, end, intensity)``.
    """

    label: int
    declared_code: str
    true_code: str
    scenario: str = "ok"
    shift: int = 0
    vigour: float = 0.9
    sow: int | None = None
    harvest: int | None = None
    tillage: int | None = None
    catch_crop: bool = False
    mowings: list[tuple[int, float, int]] = field(default_factory=list)
    grazings: list[tuple[int, int, float]] = field(default_factory=list)
    plough: int | None = None
    after_plough: str | None = None
    tree_frac: float = 0.0
    impervious_frac: float = 0.0
    water_frac: float = 0.0
    soil_bright: float = 1.0
    events: list[tuple[int, str]] = field(default_factory=list)

    @property
    def true_kind(self) -> str:
        """Phenology calendar of the true land use."""
        if self.scenario == "grassland_ploughed":
            return "grassland"  # what it was before the plough; daily_cover handles the after
        if self.scenario == "abandoned":
            return "grassland" if crop(self.declared_code).kind == "grassland" else "idle"
        return crop(self.true_code).kind


def _doy(year: int, month: int, day: int) -> int:
    return dt.date(year, month, day).timetuple().tm_yday


def _declared_codes(n: int, livestock: np.ndarray, valley: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Declared codes: the regional mix, grassland 3x likelier on livestock farms (3x rarer
    elsewhere) and 2.5x likelier in the valley (0.8x on the plateau)."""
    codes = list(CROP_MIX)
    base = np.array([CROP_MIX[c] for c in codes])
    grass = np.array([CODES[c].group in GRASSLAND_GROUPS for c in codes])
    probs = {}
    for lv in (False, True):
        for va in (False, True):
            p = np.where(grass, base * (3.0 if lv else 1 / 3) * (2.5 if va else 0.8), base)
            probs[lv, va] = p / p.sum()
    out = [
        codes[rng.choice(len(codes), p=probs[bool(lv), bool(va)])]
        for lv, va in zip(livestock, valley, strict=True)
    ]
    # Small test seasons still see every code once (placed at random parcels).
    if n >= len(codes):
        for j, code in zip(rng.permutation(n)[: len(codes)], codes, strict=True):
            out[j] = code
    return out


def _spaced_days(rng: np.random.Generator, k: int, lo: int, hi: int, gap: int) -> list[int]:
    """``k`` sorted days in ``[lo, hi]`` at least ``gap`` days apart (fewer if they do not fit)."""
    days: list[int] = []
    for _ in range(50):
        if len(days) == k:
            break
        d = int(rng.integers(lo, hi + 1))
        if all(abs(d - x) >= gap for x in days):
            days.append(d)
    return sorted(days)


def _schedule(p: ParcelPlan, rng: np.random.Generator, year: int, livestock: bool) -> None:
    """Fill sowing/harvest/tillage/mowing/grazing dates for the parcel's true land use."""
    kind = p.true_kind
    p.shift = int(np.clip(rng.normal(0, 5), -12, 12))
    # Peak green cover: a dense canopy hides the soil almost completely (LAI 3-5).
    p.vigour = float(rng.uniform(0.9, 1.0))
    p.soil_bright = float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.2))
    p.catch_crop = bool(rng.random() < 0.4)
    protected = (_doy(year, *FALLOW_PROTECTED[0]), _doy(year, *FALLOW_PROTECTED[1]))
    if kind in ("winter_cereal", "winter_barley", "rapeseed"):
        base = {"winter_cereal": 190, "winter_barley": 178, "rapeseed": 184}[kind]
        p.harvest = base + p.shift + int(rng.integers(-3, 8))
        p.tillage = p.harvest + int(rng.integers(12, 60)) if rng.random() < 0.75 else None
    elif kind == "sunflower":
        p.sow = 110 + int(rng.integers(-8, 16))
        p.harvest = p.sow + 140 + int(rng.integers(-5, 11))
        p.tillage = p.harvest + int(rng.integers(20, 40)) if rng.random() < 0.3 else None
        p.events.append((p.sow - 20, "ploughing"))
    elif kind == "maize":
        p.sow = 120 + int(rng.integers(-10, 16))
        silage = p.true_code == "MIE"
        p.harvest = p.sow + (128 if silage else 155) + int(rng.integers(-7, 8))
        p.events.append((p.sow - 15, "ploughing"))
    elif kind == "spring_pea":
        p.sow = 62 + int(rng.integers(-8, 9))
        p.harvest = p.sow + 115 + int(rng.integers(-5, 6))
        p.tillage = p.harvest + int(rng.integers(15, 50))
    elif kind == "lucerne":
        first = 130 + int(rng.integers(-6, 10))
        cuts = [first + 40 * i + int(rng.integers(-4, 5)) for i in range(int(rng.integers(3, 5)))]
        p.mowings = [(d, float(rng.uniform(0.6, 0.8)), int(rng.integers(22, 30))) for d in cuts]
    elif kind == "grassland" and p.scenario not in ("no_activity", "abandoned"):
        grazing_only = rng.random() < (0.3 if livestock else 0.1)
        if not grazing_only:
            k = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.25, 0.1]))
            days = _spaced_days(rng, k, 110, 270, 32)
            p.mowings = [(d, float(rng.uniform(0.45, 0.75)), int(rng.integers(14, 29))) for d in days]
        if grazing_only or (livestock and rng.random() < 0.5):
            # Grazing after the last cut (aftermath) or through spring-summer for grazing-only.
            last = max([d for d, _, _ in p.mowings], default=80)
            start = last + int(rng.integers(20, 40))
            if start < 270:
                end = min(start + int(rng.integers(30, 70)), 300)
                p.grazings.append((start, end, float(rng.uniform(0.2, 0.35))))
        if not p.mowings and not p.grazings:
            start = 100 + int(rng.integers(0, 30))
            p.grazings.append((start, start + 60, float(rng.uniform(0.2, 0.35))))
    elif kind == "fallow":
        if p.scenario == "fallow_mowed":
            d = int(rng.integers(protected[0] + 3, protected[1] - 3))
            p.mowings = [(d, float(rng.uniform(0.55, 0.75)), int(rng.integers(18, 29)))]
        elif rng.random() < 0.6:
            d = (
                int(rng.integers(75, protected[0] - 5))
                if rng.random() < 0.3
                else int(rng.integers(protected[1] + 10, 260))
            )
            p.mowings = [(d, float(rng.uniform(0.55, 0.75)), int(rng.integers(18, 29)))]

    if p.scenario == "grassland_ploughed":
        p.plough = 95 + int(rng.integers(0, 56))
        p.mowings = [m for m in p.mowings if m[0] < p.plough - 10]
        p.grazings = [g for g in p.grazings if g[1] < p.plough]
        p.after_plough = "maize" if p.true_code == "MIS" else "grass"
        p.sow = p.plough + int(rng.integers(12, 26))
        if p.after_plough == "maize":
            p.harvest = p.sow + 155 + int(rng.integers(-7, 8))
        p.events.append((p.plough, "ploughing"))
    if p.scenario == "abandoned":
        # Scrub creeps in: brambles and young shrubs read as "tree" cover.
        p.tree_frac = float(rng.uniform(0.15, 0.35))
    elif p.true_code == "PPH" and rng.random() < 0.2:
        p.tree_frac = float(rng.uniform(0.03, 0.1))  # scattered trees of the bocage

    if p.sow is not None:
        p.events.append((p.sow, "sowing"))
    if p.harvest is not None:
        p.events.append((p.harvest, "harvest"))
    if p.tillage is not None:
        p.events.append((p.tillage, "ploughing"))
    p.events += [(d, "mowing") for d, _, _ in p.mowings]
    p.events += [(s, "grazing_start") for s, _, _ in p.grazings]
    p.events.sort()


def plan_parcels(
    rng: np.random.Generator,
    *,
    labels: np.ndarray,
    farms: np.ndarray,
    livestock: np.ndarray,
    tiny: np.ndarray,
    year: int,
    valley: np.ndarray | None = None,
) -> list[ParcelPlan]:
    """Declarations, scenarios and schedules of every parcel.

    Parameters
    ----------
    labels
        Raster label of each parcel (int, 1..n).
    farms
        Farm index of each parcel; ``livestock`` is indexed by farm.
    tiny
        Deliberately tiny parcels (kept compliant: their point is to be unmonitorable).
    valley
        Parcels near the river (more grassland); none if omitted.
    year
        Campaign year (days of year refer to it).
    """
    n = len(labels)
    live = livestock[farms]
    declared = _declared_codes(n, live, np.zeros(n, bool) if valley is None else valley, rng)
    plans = [
        ParcelPlan(label=int(lab), declared_code=c, true_code=c)
        for lab, c in zip(labels, declared, strict=True)
    ]

    free = np.ones(n, dtype=bool) & ~tiny
    groups = np.array([CODES[c].group for c in declared])
    candidates = {
        "grassland_ploughed": np.array([c in ("PPH", "PRL") for c in declared]),
        "no_activity": np.isin(groups, list(GRASSLAND_GROUPS)),
        "wrong_crop": np.array([c in WRONG_CROP for c in declared]),
        "abandoned": np.isin(groups, list(GRASSLAND_GROUPS)) | np.array([c in ARABLE for c in declared]),
        "fallow_mowed": np.isin(groups, list(FALLOW_GROUPS)),
    }
    for scenario, share in SCENARIO_SHARE.items():
        pool = np.flatnonzero(candidates[scenario] & free)
        k = min(len(pool), max(1, round(share * n)))
        for j in rng.choice(pool, size=k, replace=False) if k else []:
            free[j] = False
            p = plans[j]
            p.scenario = scenario
            if scenario == "wrong_crop":
                p.true_code = str(rng.choice(WRONG_CROP[p.declared_code]))
            elif scenario == "grassland_ploughed" and rng.random() < 0.4:
                p.true_code = "MIS"
            elif scenario == "abandoned" and p.declared_code in ARABLE:
                p.true_code = "SNE"
    for j, p in enumerate(plans):
        _schedule(p, rng, year, bool(live[j]))
    return plans


def truth_parcels(plans: list[ParcelPlan], ids: list[str], year: int) -> pd.DataFrame:
    """``truth/parcels.csv``: one row per parcel (declared vs true, compliance, scenario)."""
    exp = expected_controls(plans, ids, year)
    red = set(exp.loc[exp["expected"] == "red", "id_parcel"])
    rows = []
    for p, pid in zip(plans, ids, strict=True):
        rows.append(
            {
                "id_parcel": pid,
                "declared_code": p.declared_code,
                "declared_group": CODES[p.declared_code].group,
                "true_code": p.true_code,
                "true_group": CODES[p.true_code].group,
                "compliant": 0 if pid in red else 1,
                "scenario": p.scenario,
                "ploughed_date": "" if p.plough is None else _date(year, p.plough),
            }
        )
    return pd.DataFrame(rows)


def _date(year: int, doy: int) -> str:
    return (dt.date(year, 1, 1) + dt.timedelta(days=doy - 1)).isoformat()


def truth_events(
    plans: list[ParcelPlan], ids: list[str], year: int, *, first: int, last: int
) -> pd.DataFrame:
    """``truth/events.csv``: ``id_parcel, date, event`` for events between days ``first`` and ``last``."""
    rows = [
        {"id_parcel": pid, "date": _date(year, d), "event": ev}
        for p, pid in zip(plans, ids, strict=True)
        for d, ev in p.events
        if first <= d <= last
    ]
    return pd.DataFrame(rows, columns=["id_parcel", "date", "event"])


def expected_controls(plans: list[ParcelPlan], ids: list[str], year: int) -> pd.DataFrame:
    """``truth/expected_controls.csv``: ``id_parcel, control, expected`` (green/red) where it applies."""
    lo, hi = _doy(year, *FALLOW_PROTECTED[0]), _doy(year, *FALLOW_PROTECTED[1])
    rows = []
    for p, pid in zip(plans, ids, strict=True):
        group = CODES[p.declared_code].group
        true_group = CODES[p.true_code].group
        ok = {"crop_group": true_group == group}
        if group in GRASSLAND_GROUPS:
            ok["min_activity"] = bool(p.mowings or p.grazings or p.plough is not None)
        if group == 18:
            ok["grassland_not_ploughed"] = p.plough is None
        if group in FALLOW_GROUPS:
            ok["fallow"] = true_group in FALLOW_GROUPS and not any(lo <= d <= hi for d, _, _ in p.mowings)
        for control in ("min_activity", "crop_group", "grassland_not_ploughed", "fallow"):
            if control in ok:
                rows.append(
                    {"id_parcel": pid, "control": control, "expected": "green" if ok[control] else "red"}
                )
    return pd.DataFrame(rows, columns=["id_parcel", "control", "expected"])
