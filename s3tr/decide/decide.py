"""Marker evidence -> one traffic-light decision per (parcel, applicable control).

Pure functions: no database, no files other than the shipped code list. The rules, in short
(thresholds come from the :class:`~s3tr.decide.rules.RuleSet`):

* **Not enough evidence is orange, never red.** A parcel with no evidence row, or too small to
  be monitored (fewer than ``min_pixels`` full pixels), is orange for every control. Too few
  clear observations or a long cloudy gap forbid any red, and also any green that rests on the
  *absence* of an event (no ploughing seen, fallow undisturbed): an event may have been missed.
  A green that rests on an *observed* event (a mowing, the declared crop recognised) stands.
* ``min_activity`` (grassland): green when activity or a mowing in the activity window is shown
  with enough confidence; red when the activity marker says "none" with enough confidence and
  enough observations; orange otherwise: ``no_activity_seen`` when nothing was seen but the
  marker cannot rule activity out (its confidence in "none" is capped because light grazing
  hides from optical series), and ``conflicting_markers`` when a confident mowing meets a
  confident "no activity".
* ``crop_group``: green when the declared group is the top prediction with probability
  ``>= p_green``; red when another group has ``>= p_other`` and the declared group ``<= p_red``
  (its probability is bounded from the top-2 when it is not among them); orange otherwise.
* ``grassland_not_ploughed`` (permanent grassland): red on bare soil with confidence
  ``>= confidence_red``, orange between ``confidence_orange`` and that, green when none. A
  confident ploughing while the classifier confidently recognises grassland is
  ``conflicting_markers``.
* ``fallow``: red on a confident mowing or bare soil inside the protected period, orange on a
  doubtful one, green when none.
* With ``as_of`` before the end of the relevant window, verdicts that need the whole window
  (min_activity red, fallow green) wait: orange ``window_not_over``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from s3tr.decide.controls import applicable_controls
from s3tr.decide.flags import CONTROLS, Control, Flag, Reason, explain
from s3tr.decide.rules import RuleSet
from s3tr.errors import ConfigError
from s3tr.frames import records

__all__ = ["DECISION_COLUMNS", "crop_model_facts", "decide", "normalise_group"]

logger = logging.getLogger(__name__)

DECISION_COLUMNS = [
    "id_parcel",
    "campaign",
    "control",
    "flag",
    "reasons",
    "evidence",
    "explanation_fr",
    "explanation_en",
    "ruleset_version",
    "marker_version",
    "model_version",
    "department",
    "pacage",
    "surf_parc",
    "code_cultu",
    "code_group",
]

_FLAG_FR = {Flag.GREEN: "vert", Flag.ORANGE: "orange", Flag.RED: "rouge"}


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if value.__class__ is float:  # the common case, checked first for speed
        return value != value
    if value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, np.floating) and bool(np.isnan(value))


def normalise_group(value: Any) -> str | None:
    """A crop-group code as a canonical string (``1``, ``"1"``, ``1.0`` -> ``"1"``); None when missing."""
    if _missing(value):
        return None
    text = str(value).strip()
    if not text or text.lower() in ("nan", "none", "<na>"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text.upper()
    return str(int(number)) if number.is_integer() else text


def _num(value: Any, ndigits: int = 3) -> float | int | None:
    """JSON-safe, rounded number (rounding keeps nightly fingerprints stable against float noise)."""
    if _missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return int(value)
    number = float(value)
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return round(number, ndigits)


def _dates(value: Any) -> list[str]:
    if _missing(value):
        return []
    return sorted(d.strip() for d in str(value).split(";") if d.strip())


def _intervals(row: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    """``(start, end)`` of each event: from ``<prefix>_intervals``, else a point at each date."""
    text = row.get(f"{prefix}_intervals")
    if _missing(text) or not str(text).strip():
        return [(d, d) for d in _dates(row.get(f"{prefix}_dates"))]
    pairs = (part.strip().split("/", 1) for part in str(text).split(";") if part.strip())
    return sorted((p[0], p[-1]) for p in pairs)


def _events(row: dict[str, Any], prefix: str) -> list[tuple[str, str, Any]]:
    """``(start, end, confidence)`` of each event, in time order.

    The confidence is the event's own (``<prefix>_confidences``, aligned with the dates); evidence written
    before that column existed gives every event the parcel's best (``<prefix>_confidence``).
    """
    spans = _intervals(row, prefix)
    text = row.get(f"{prefix}_confidences")
    own = [] if _missing(text) else [float(c) for c in str(text).split(";") if c.strip()]
    if len(own) != len(spans):
        own = [row.get(f"{prefix}_confidence")] * len(spans)
    return [(a, b, c) for (a, b), c in zip(spans, own, strict=True)]


def _best(events: list[tuple[str, str, Any]]) -> Any:
    """The highest confidence of ``events`` (None without any)."""
    known = [c for _, _, c in events if not _missing(c)]
    return max(known) if known else None


def _best_doubt(row: dict[str, Any], prefix: str) -> str | None:
    """The ``<prefix>_doubts`` entry of the most confident event (None when the evidence has none)."""
    events = _events(row, prefix)
    text = row.get(f"{prefix}_doubts")
    if _missing(text) or not events:
        return None
    doubts = str(text).split(";")
    if len(doubts) != len(events):
        return None
    known = [(float(c), k) for k, (_, _, c) in enumerate(events) if not _missing(c)]
    return doubts[max(known)[1]].strip() if known else None


#: The orange reason of a grassland bare soil the marker doubts, by its doubt.
_SOIL_DOUBTS = {
    "dry_vegetation": Reason.BARE_SOIL_DRY_VEGETATION,
    "no_green_cover": Reason.BARE_SOIL_NO_LOST_COVER,
}


def _in(dates: list[str], start: date, end: date) -> list[str]:
    lo, hi = start.isoformat(), end.isoformat()
    return [d for d in dates if lo <= d <= hi]


def _bool(value: Any) -> bool | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _ge(value: Any, threshold: float) -> bool:
    return not _missing(value) and float(value) >= threshold


def _sufficiency(row: dict[str, Any], rs: RuleSet) -> tuple[list[Reason], dict[str, Any]]:
    """Reasons the evidence is too thin to conclude, and the values that show it."""
    reasons: list[Reason] = []
    ev: dict[str, Any] = {}
    n_valid: Any = row.get("n_valid")
    if _missing(n_valid) or int(n_valid) < rs.evidence.min_valid_observations:
        reasons.append(Reason.NOT_ENOUGH_OBSERVATIONS)
        ev["n_valid"] = _num(n_valid)
    gap: Any = row.get("max_gap_days")
    if not _missing(gap) and float(gap) > rs.evidence.max_cloudy_gap_days:
        reasons.append(Reason.CLOUDY_GAP_TOO_LONG)
        ev["max_gap_days"] = _num(gap, 0)
    return reasons, ev


def _min_activity(row: dict[str, Any], rs: RuleSet, thin: list[Reason], as_of: date | None):
    ev: dict[str, Any] = {}
    # A mowing happened between the last clear observation before it and the first after it: it proves
    # activity in the window only when that whole interval is inside (the activity marker counts it so too).
    # Each cut is judged on its own confidence: a confident cut elsewhere proves nothing about this one.
    lo, hi = rs.activity_window.start.isoformat(), rs.activity_window.end.isoformat()
    cuts = [e for e in _events(row, "mowing") if e[0] <= hi and e[1] >= lo]
    inside = [e for e in cuts if e[0] >= lo and e[1] <= hi]
    across = [e for e in cuts if not (e[0] >= lo and e[1] <= hi)]
    mowing = [a for a, _, _ in inside]
    straddling = [f"{a}/{b}" for a, b, _ in across]
    mow_conf: Any = _best(inside)
    act = _bool(row.get("activity"))
    act_conf: Any = row.get("activity_confidence")
    proven_mowing = bool(mowing) and _ge(mow_conf, rs.mowing.min_confidence)
    if mowing:
        ev.update(mowing_dates=mowing, mowing_confidence=_num(mow_conf))
    if straddling:
        # The confidence quoted is the cut the verdict rests on: the window's own when there is one.
        ev["straddling_mowing_intervals"] = straddling
        ev.setdefault("mowing_confidence", _num(_best(across)))
    ev.update(activity=act, activity_confidence=_num(act_conf))
    confident = _ge(act_conf, rs.activity.min_confidence)
    if act is True and (confident or proven_mowing):
        reasons = [Reason.ACTIVITY_DETECTED] + ([Reason.MOWING_DETECTED] if proven_mowing else [])
        return Flag.GREEN, reasons, ev
    if proven_mowing:
        if act is False and confident:
            return Flag.ORANGE, [Reason.CONFLICTING_MARKERS, Reason.MOWING_DETECTED], ev
        return Flag.GREEN, [Reason.MOWING_DETECTED], ev
    if str(row.get("activity_status") or "ok") != "ok" or act is None:
        return Flag.ORANGE, [Reason.MARKER_NOT_ENOUGH_DATA, *thin], ev
    if straddling and _ge(_best(across), rs.mowing.min_confidence):
        return Flag.ORANGE, [Reason.MOWING_STRADDLES_WINDOW], ev
    if act is True:
        return Flag.ORANGE, [Reason.ACTIVITY_UNCERTAIN], ev
    # the marker says "no activity"
    if thin:
        return Flag.ORANGE, thin, ev
    if not confident:
        # Nothing seen, but not proof that nothing happened (light grazing hides): a human decides.
        ev["n_valid"] = _num(row.get("n_valid"))
        return Flag.ORANGE, [Reason.NO_ACTIVITY_SEEN], ev
    if as_of is not None and as_of < rs.activity_window.end:
        return Flag.ORANGE, [Reason.WINDOW_NOT_OVER], ev
    ev["n_valid"] = _num(row.get("n_valid"))
    return Flag.RED, [Reason.NO_ACTIVITY_DETECTED], ev


def _crop_group(
    row: dict[str, Any],
    rs: RuleSet,
    thin: list[Reason],
    classes: set[str] | None,
    declared: str | None,
    training: dict[str, int] | None,
):
    rules = rs.crop_group
    pred = normalise_group(row.get("crop_predicted"))
    second = normalise_group(row.get("crop_second"))
    p1: Any = row.get("crop_probability")
    p2: Any = row.get("crop_second_probability")
    ev: dict[str, Any] = {"declared_group": declared}
    if pred is None or _missing(p1):
        return Flag.ORANGE, [Reason.NO_CROP_PREDICTION], ev
    p1 = float(p1)
    p2 = None if _missing(p2) else float(p2)
    if pred == declared:
        p_declared = p1
    elif second is not None and second == declared and p2 is not None:
        p_declared = p2
    else:
        # not in the top 2: at most the remaining mass, and at most the second's probability
        rest = max(0.0, 1.0 - p1 - (p2 or 0.0))
        p_declared = min(rest, p2) if p2 is not None else rest
    ev.update(
        crop_predicted=pred,
        crop_probability=_num(p1),
        crop_second=second,
        crop_second_probability=_num(p2),
        declared_probability=_num(p_declared),
    )
    if classes is not None and declared not in classes:
        return Flag.ORANGE, [Reason.DECLARED_GROUP_NOT_MODELLED], ev
    if pred == declared and p1 >= rules.p_green:
        return Flag.GREEN, [Reason.CROP_GROUP_CONFIRMED], ev
    if pred != declared and p1 >= rules.p_other and p_declared <= rules.p_red:
        if rules.similar(pred, declared):
            return Flag.ORANGE, [Reason.CROP_GROUP_SIMILAR], ev
        n_training = None if training is None else training.get(declared or "", 0)
        if n_training is not None and n_training < rules.min_training_parcels:
            # Honest parcels of a group the model saw a few dozen times get its probability <= p_red far
            # more often than common ones (UCR Crop, groups cut to 25 training series: 4 % of them would be
            # wrong reds, against 0.1 % for groups with 210; see the rule set's comment).
            ev.update(training_parcels=n_training, min_training_parcels=rules.min_training_parcels)
            return Flag.ORANGE, [Reason.DECLARED_GROUP_RARE_IN_TRAINING], ev
        if thin:
            return Flag.ORANGE, [Reason.CROP_GROUP_UNCERTAIN, *thin], ev
        if pred in rules.idle_groups and _bool(row.get("activity")) is True:
            # Two markers disagree: "not farmed" against a mowing, grazing or tillage seen. On demo
            # season 0 this was the case of every lucerne parcel read as unfarmed land (mown 2-3
            # times), and of none of the parcels truly left unfarmed.
            ev.update(
                mowing_dates=_dates(row.get("mowing_dates")),
                activity_confidence=_num(row.get("activity_confidence")),
            )
            return Flag.ORANGE, [Reason.CROP_IDLE_BUT_ACTIVE], ev
        homogeneity: Any = row.get("homogeneity")
        if rules.max_ndvi_spread is not None and not _missing(homogeneity):
            ev["homogeneity"] = _num(homogeneity)
            # `homogeneity` is a spread (mean within-parcel NDVI std): larger means more mixed.
            if float(homogeneity) > rules.max_ndvi_spread:
                return Flag.ORANGE, [Reason.HETEROGENEOUS_PARCEL], ev
        return Flag.RED, [Reason.CROP_GROUP_CONTRADICTED], ev
    return Flag.ORANGE, [Reason.CROP_GROUP_UNCERTAIN], ev


def _grassland_not_ploughed(row: dict[str, Any], rs: RuleSet, thin: list[Reason], declared: str | None):
    dates = _dates(row.get("bare_soil_dates"))
    count: Any = row.get("bare_soil_count")
    seen = bool(dates) or (not _missing(count) and int(count) > 0)
    conf: Any = row.get("bare_soil_confidence")
    ev: dict[str, Any] = {}
    if seen:
        ev.update(bare_soil_dates=dates, bare_soil_confidence=_num(conf))
        if _ge(conf, rs.bare_soil.confidence_red):
            if thin:
                return Flag.ORANGE, thin, ev
            pred = normalise_group(row.get("crop_predicted"))
            grass_p: Any = row.get("crop_probability")
            if pred is not None and pred == declared and _ge(grass_p, rs.crop_group.p_green):
                ev.update(crop_predicted=pred, crop_probability=_num(row.get("crop_probability")))
                return Flag.ORANGE, [Reason.CONFLICTING_MARKERS, Reason.PLOUGHING_DETECTED], ev
            return Flag.RED, [Reason.PLOUGHING_DETECTED], ev
        if _ge(conf, rs.bare_soil.confidence_orange):
            # Say why the marker doubts it, when it says (evidence from markers-0.5.0 on).
            doubt = _best_doubt(row, "bare_soil")
            reason = _SOIL_DOUBTS.get(doubt or "", Reason.BARE_SOIL_UNCERTAIN)
            return Flag.ORANGE, [reason], ev
    # no (credible) bare soil: a green that rests on absence, so thin evidence forbids it
    if thin:
        return Flag.ORANGE, thin, ev
    return Flag.GREEN, [Reason.NO_PLOUGHING_DETECTED], ev


def _fallow(row: dict[str, Any], rs: RuleSet, thin: list[Reason], as_of: date | None):
    period = rs.fallow_protected_period
    lo, hi = period.start.isoformat(), period.end.isoformat()
    # A mowing happened between the last clear observation before it and the first after it: it is
    # proven inside the period only when that whole interval is; one straddling an edge may be outside.
    # And the true date can lie a few days outside the interval (docs/decisions.md), so an
    # interval close to an edge proves nothing either: it must lie edge_margin_days inside.
    margin = timedelta(days=rs.mowing.edge_margin_days)
    lo_in, hi_in = (period.start + margin).isoformat(), (period.end - margin).isoformat()
    # Each event is judged on its own confidence: a confident cut in July proves nothing about a doubtful
    # one in May (until markers-0.4.0 the evidence held only the parcel's best, which did).
    cuts = [e for e in _events(row, "mowing") if e[0] <= hi and e[1] >= lo]
    cuts_in = [e for e in cuts if e[0] >= lo_in and e[1] <= hi_in]
    cuts_near = [e for e in cuts if e[0] >= lo and e[1] <= hi and e not in cuts_in]
    cuts_across = [e for e in cuts if not (e[0] >= lo and e[1] <= hi)]
    inside = [f"{a}/{b}" if a != b else a for a, b, _ in cuts_in]
    near_edge = [f"{a}/{b}" for a, b, _ in cuts_near]
    straddling = [f"{a}/{b}" for a, b, _ in cuts_across]
    soil = [e for e in _events(row, "bare_soil") if lo <= e[0] <= hi]
    bare = [a for a, _, _ in soil]
    bare_conf: Any = _best(soil)
    ev: dict[str, Any] = {}
    # The confidence quoted is that of the events the verdict rests on, in the order the verdicts are tried.
    if inside:
        ev.update(protected_mowing_dates=inside, mowing_confidence=_num(_best(cuts_in)))
    if straddling:
        ev["straddling_mowing_intervals"] = straddling
        ev.setdefault("mowing_confidence", _num(_best(cuts_across)))
    if near_edge:
        ev["near_edge_mowing_intervals"] = near_edge
        ev.setdefault("mowing_confidence", _num(_best(cuts_near)))
    if bare:
        ev.update(protected_bare_soil_dates=bare, bare_soil_confidence=_num(bare_conf))
    proven: list[Reason] = []
    # A red rests on the cut alone, on land where cuts are rare: it needs the stricter red confidence.
    if inside and _ge(_best(cuts_in), rs.mowing.red_confidence):
        proven.append(Reason.FALLOW_MOWED_IN_PROTECTED_PERIOD)
    if bare and _ge(bare_conf, rs.bare_soil.confidence_red):
        proven.append(Reason.FALLOW_TILLED_IN_PROTECTED_PERIOD)
    if proven:
        return (Flag.ORANGE, [*proven, *thin], ev) if thin else (Flag.RED, proven, ev)
    if straddling and _ge(_best(cuts_across), rs.mowing.min_confidence):
        return Flag.ORANGE, [Reason.FALLOW_MOWING_STRADDLES_PERIOD], ev
    if near_edge and _ge(_best(cuts_near), rs.mowing.min_confidence):
        return Flag.ORANGE, [Reason.FALLOW_MOWING_NEAR_PERIOD_EDGE], ev
    if inside or straddling or near_edge or (bare and _ge(bare_conf, rs.bare_soil.confidence_orange)):
        return Flag.ORANGE, [Reason.FALLOW_DISTURBANCE_UNCERTAIN], ev
    if thin:
        return Flag.ORANGE, thin, ev
    if as_of is not None and as_of < period.end:
        return Flag.ORANGE, [Reason.WINDOW_NOT_OVER], ev
    return Flag.GREEN, [Reason.FALLOW_UNDISTURBED], ev


def _context(rs: RuleSet) -> dict[str, Any]:
    """Rule-set values the explanations may quote (not part of the stored evidence)."""
    return {
        "min_valid_observations": rs.evidence.min_valid_observations,
        "max_cloudy_gap_days": rs.evidence.max_cloudy_gap_days,
        "min_pixels": rs.evidence.min_pixels,
        "activity_min_confidence": rs.activity.min_confidence,
        "window_start": rs.activity_window.start.isoformat(),
        "window_end": rs.activity_window.end.isoformat(),
        "protected_start": rs.fallow_protected_period.start.isoformat(),
        "protected_end": rs.fallow_protected_period.end.isoformat(),
        "edge_margin_days": rs.mowing.edge_margin_days,
        "max_ndvi_spread": rs.crop_group.max_ndvi_spread,
    }


def _model_classes(evidence: pd.DataFrame, model_classes: Collection[Any] | None) -> set[str] | None:
    if model_classes is not None:
        return {g for g in (normalise_group(c) for c in model_classes) if g is not None}
    if "crop_predicted" not in evidence.columns or evidence["crop_predicted"].isna().all():
        return None
    # without an explicit class list, the groups the model ever outputs are the best guess of its classes
    values = list(evidence["crop_predicted"].dropna().unique())
    if "crop_second" in evidence.columns:
        values += list(evidence["crop_second"].dropna().unique())
    seen = {g for g in (normalise_group(v) for v in values) if g is not None}
    logger.info("crop model classes inferred from the evidence: %s", sorted(seen))
    return seen


def crop_model_facts(crop_model: object | None) -> dict[str, Any]:
    """The ``model_classes`` and ``training_parcels`` arguments of :func:`decide` for a crop model.

    Both None when there is no model, or when it does not say (the rules that need them then stand aside).
    """
    return {
        "model_classes": getattr(crop_model, "classes", None),
        "training_parcels": getattr(crop_model, "training_parcels", None),
    }


def decide(
    parcels: pd.DataFrame,
    evidence: pd.DataFrame,
    ruleset: RuleSet,
    *,
    model_classes: Collection[Any] | None = None,
    training_parcels: Mapping[Any, int] | None = None,
    as_of: date | None = None,
) -> pd.DataFrame:
    """Decide every applicable control of every parcel.

    Parameters
    ----------
    parcels
        Declarations: ``id_parcel, code_cultu, code_group, surf_parc`` (ha), ``pacage, campaign,
        department``; optional ``monitorable`` (bool) and ``n_pixels`` (full 20 m pixels after
        the inward buffer) — also read from ``evidence`` when absent here. A geometry column is
        ignored.
    evidence
        One row per parcel from ``s3tr.markers.compute_evidence``, keyed by ``parcel_id``.
        Parcels missing from it are orange ``no_evidence``.
    ruleset
        The campaign's :class:`~s3tr.decide.rules.RuleSet`.
    model_classes
        Crop groups the crop model can predict; a declared group outside them gets orange
        ``declared_group_not_modelled`` instead of a wrong red. Default: the groups that appear
        in ``crop_predicted``/``crop_second``.
    training_parcels
        Training parcels of each crop group in the crop model (its card's ``classes``); a declared group
        with fewer than the rule set's ``crop_group.min_training_parcels`` is never red, only orange
        ``declared_group_rare_in_training``. Its groups are the model's classes when ``model_classes``
        is not given. Default: unknown, the rule is not applied.
    as_of
        Date of the run; before a window's end, verdicts that need the whole window wait.

    Returns
    -------
    pandas.DataFrame
        One row per (parcel, control), columns :data:`DECISION_COLUMNS`: ``flag`` is a
        :class:`~s3tr.decide.flags.Flag` value (str), ``reasons`` a list of reason codes,
        ``evidence`` a JSON-safe dict (dates as ``YYYY-MM-DD``, rounded numbers).

    Raises
    ------
    ConfigError
        When a parcel's campaign differs from the rule set's.
    """
    if "campaign" in parcels.columns:
        camps = pd.to_numeric(parcels["campaign"], errors="coerce").dropna().unique()
        wrong = [int(c) for c in camps if int(c) != ruleset.campaign]
        if wrong:
            raise ConfigError(
                f"parcels of campaign(s) {wrong} decided with rule set {ruleset.version} "
                f"(campaign {ruleset.campaign}): load the rule set of their campaign"
            )
    pairs = applicable_controls(parcels)
    if pairs.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    decl = pd.DataFrame(parcels.drop(columns=["geometry"], errors="ignore")).copy()
    decl["id_parcel"] = decl["id_parcel"].astype(str)
    ev = evidence.copy()
    if "parcel_id" in ev.columns:
        ev = ev.rename(columns={"parcel_id": "id_parcel"})
    if "id_parcel" not in ev.columns:  # no imagery at all: every parcel is no_evidence
        ev["id_parcel"] = pd.Series(dtype=str)
    ev["id_parcel"] = ev["id_parcel"].astype(str)
    ev = ev.drop_duplicates("id_parcel", keep="last")
    ev["_has_evidence"] = True
    overlap = [c for c in ev.columns if c in decl.columns and c != "id_parcel"]
    merged = decl.merge(ev.drop(columns=overlap, errors="ignore"), on="id_parcel", how="left")
    by_id = ev.set_index("id_parcel")
    for col in ("monitorable", "n_pixels"):  # may come with the parcels, the evidence, or both
        if col in overlap:
            merged[col] = merged[col].where(merged[col].notna(), merged["id_parcel"].map(by_id[col]))
    if "monitorable" not in merged.columns and "n_pixels" not in merged.columns:
        logger.warning("no monitorable/n_pixels column: every parcel is taken as monitorable")
    rows = {rec["id_parcel"]: rec for rec in records(merged)}
    if model_classes is None and training_parcels is not None:
        model_classes = list(training_parcels)
    classes = _model_classes(ev, model_classes)
    training = (
        None
        if training_parcels is None
        else {g: int(n) for g, n in ((normalise_group(k), v) for k, v in training_parcels.items()) if g}
    )
    context = _context(ruleset)

    out: list[dict[str, Any]] = []
    for id_parcel, control in zip(pairs["id_parcel"], pairs["control"], strict=True):
        row = rows[id_parcel]
        declared = normalise_group(row.get("code_group"))
        ev_out: dict[str, Any] = {}
        n_pixels: Any = row.get("n_pixels")
        monitorable = _bool(row.get("monitorable"))
        too_small = monitorable is False or (
            not _missing(n_pixels) and int(n_pixels) < ruleset.evidence.min_pixels
        )
        if row.get("_has_evidence") is not True:
            flag, reasons = Flag.ORANGE, [Reason.NO_EVIDENCE]
        elif too_small:
            flag, reasons = Flag.ORANGE, [Reason.TOO_SMALL]
            ev_out["n_pixels"] = _num(n_pixels)
        else:
            thin, thin_ev = _sufficiency(row, ruleset)
            if control == Control.MIN_ACTIVITY:
                flag, reasons, specific = _min_activity(row, ruleset, thin, as_of)
            elif control == Control.CROP_GROUP:
                flag, reasons, specific = _crop_group(row, ruleset, thin, classes, declared, training)
            elif control == Control.GRASSLAND_NOT_PLOUGHED:
                flag, reasons, specific = _grassland_not_ploughed(row, ruleset, thin, declared)
            else:
                flag, reasons, specific = _fallow(row, ruleset, thin, as_of)
            # the sufficiency values are evidence only when they shaped the verdict
            if Reason.NOT_ENOUGH_OBSERVATIONS in reasons:
                ev_out["n_valid"] = thin_ev["n_valid"]
            if Reason.CLOUDY_GAP_TOO_LONG in reasons:
                ev_out["max_gap_days"] = thin_ev["max_gap_days"]
            ev_out.update(specific)
        codes = list(dict.fromkeys(r.value for r in reasons))
        talk = {**context, **ev_out, "n_pixels": _num(n_pixels), "n_valid": _num(row.get("n_valid"))}
        talk.setdefault("declared_group", declared)
        title_fr, title_en = CONTROLS[Control(control)]
        out.append(
            {
                "id_parcel": id_parcel,
                "campaign": ruleset.campaign if _missing(row.get("campaign")) else int(row["campaign"]),
                "control": str(control),
                "flag": flag.value,
                "reasons": codes,
                "evidence": ev_out,
                "explanation_fr": f"{title_fr} — {_FLAG_FR[flag]} : {explain(codes, talk, lang='fr')}",
                "explanation_en": f"{title_en} — {flag.value}: {explain(codes, talk, lang='en')}",
                "ruleset_version": ruleset.version,
                "marker_version": None if _missing(row.get("marker_version")) else str(row["marker_version"]),
                "model_version": None if _missing(row.get("model_version")) else str(row["model_version"]),
                "department": None if _missing(row.get("department")) else str(row["department"]),
                "pacage": None if _missing(row.get("pacage")) else str(row["pacage"]),
                "surf_parc": _num(row.get("surf_parc"), 4),
                "code_cultu": None if _missing(row.get("code_cultu")) else str(row["code_cultu"]),
                "code_group": int(declared) if declared is not None and declared.isdigit() else declared,
            }
        )
    return pd.DataFrame(out, columns=DECISION_COLUMNS)
