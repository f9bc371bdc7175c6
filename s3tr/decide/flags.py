"""Flags, controls and reason codes, each with a French and an English explanation.

A decision is a :class:`Flag` plus one or more :class:`Reason` codes. Reason codes are stable
strings (they are stored in the review database and shown to farmers), never magic integers.
Every reason carries a plain-language explanation in French (the language of the farmer and of
the DDT) and in English; the texts may name evidence fields in braces (``{mowing_dates}``) that
:func:`explain` fills from the decision's evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "CONTROLS",
    "REASONS",
    "Control",
    "Flag",
    "Reason",
    "ReasonInfo",
    "explain",
]


class Flag(StrEnum):
    """Traffic light of one control on one parcel."""

    GREEN = "green"
    """The declaration is confirmed by the evidence."""
    ORANGE = "orange"
    """Not enough (or conflicting) evidence: a human must look."""
    RED = "red"
    """The declaration is contradicted by sufficient evidence."""


class Control(StrEnum):
    """Stable identifiers of the controls (stored in the database, in flags.gpkg and in the API)."""

    MIN_ACTIVITY = "min_activity"
    CROP_GROUP = "crop_group"
    GRASSLAND_NOT_PLOUGHED = "grassland_not_ploughed"
    FALLOW = "fallow"


CONTROLS: dict[Control, tuple[str, str]] = {
    Control.MIN_ACTIVITY: (
        "Activité agricole minimale sur prairie (fauche ou pâturage)",
        "Minimum agricultural activity on grassland (mowing or grazing)",
    ),
    Control.CROP_GROUP: (
        "Groupe de culture déclaré confirmé",
        "Declared crop group confirmed",
    ),
    Control.GRASSLAND_NOT_PLOUGHED: (
        "Prairie permanente non retournée",
        "Permanent grassland not ploughed",
    ),
    Control.FALLOW: (
        "Jachère sans fauche ni travail du sol pendant la période d'interdiction",
        "Fallow land not mowed nor tilled during the protected period",
    ),
}
"""Control id -> (French title, English title)."""


class Reason(StrEnum):
    """Reason codes of decisions. The explanation of each lives in :data:`REASONS`."""

    # evidence sufficiency (always orange)
    NO_EVIDENCE = "no_evidence"
    TOO_SMALL = "too_small"
    NOT_ENOUGH_OBSERVATIONS = "not_enough_observations"
    CLOUDY_GAP_TOO_LONG = "cloudy_gap_too_long"
    MARKER_NOT_ENOUGH_DATA = "marker_not_enough_data"
    CONFLICTING_MARKERS = "conflicting_markers"
    WINDOW_NOT_OVER = "window_not_over"
    # min_activity
    ACTIVITY_DETECTED = "activity_detected"
    MOWING_DETECTED = "mowing_detected"
    NO_ACTIVITY_DETECTED = "no_activity_detected"
    NO_ACTIVITY_SEEN = "no_activity_seen"
    ACTIVITY_UNCERTAIN = "activity_uncertain"
    MOWING_STRADDLES_WINDOW = "mowing_straddles_window"
    # crop_group
    CROP_GROUP_CONFIRMED = "crop_group_confirmed"
    CROP_GROUP_CONTRADICTED = "crop_group_contradicted"
    CROP_GROUP_UNCERTAIN = "crop_group_uncertain"
    CROP_GROUP_SIMILAR = "crop_group_similar"
    CROP_IDLE_BUT_ACTIVE = "crop_idle_but_active"
    NO_CROP_PREDICTION = "no_crop_prediction"
    DECLARED_GROUP_NOT_MODELLED = "declared_group_not_modelled"
    DECLARED_GROUP_RARE_IN_TRAINING = "declared_group_rare_in_training"
    HETEROGENEOUS_PARCEL = "heterogeneous_parcel"
    # grassland_not_ploughed
    NO_PLOUGHING_DETECTED = "no_ploughing_detected"
    PLOUGHING_DETECTED = "ploughing_detected"
    BARE_SOIL_UNCERTAIN = "bare_soil_uncertain"
    BARE_SOIL_DRY_VEGETATION = "bare_soil_dry_vegetation"
    BARE_SOIL_NO_LOST_COVER = "bare_soil_no_lost_cover"
    # fallow
    FALLOW_UNDISTURBED = "fallow_undisturbed"
    FALLOW_MOWED_IN_PROTECTED_PERIOD = "fallow_mowed_in_protected_period"
    FALLOW_TILLED_IN_PROTECTED_PERIOD = "fallow_tilled_in_protected_period"
    FALLOW_MOWING_STRADDLES_PERIOD = "fallow_mowing_straddles_period"
    FALLOW_MOWING_NEAR_PERIOD_EDGE = "fallow_mowing_near_period_edge"
    FALLOW_DISTURBANCE_UNCERTAIN = "fallow_disturbance_uncertain"


@dataclass(frozen=True)
class ReasonInfo:
    """What a reason code means.

    Attributes
    ----------
    flag
        The flag this reason leads to on its own (an orange reason forces at least orange).
    fr, en
        Plain-language explanation in French and in English; may hold ``{field}`` placeholders
        filled from the decision's evidence by :func:`explain`.
    """

    flag: Flag
    fr: str
    en: str


REASONS: dict[Reason, ReasonInfo] = {
    Reason.NO_EVIDENCE: ReasonInfo(
        Flag.ORANGE,
        "Aucune observation satellite exploitable n'est disponible pour cette parcelle.",
        "No usable satellite observation is available for this parcel.",
    ),
    Reason.TOO_SMALL: ReasonInfo(
        Flag.ORANGE,
        "La parcelle est trop petite ou trop étroite pour être suivie par Sentinel-2 "
        "({n_pixels} pixels de 20 m entiers, il en faut au moins {min_pixels}).",
        "The parcel is too small or too narrow to be monitored by Sentinel-2 "
        "({n_pixels} full 20 m pixels, at least {min_pixels} are needed).",
    ),
    Reason.NOT_ENOUGH_OBSERVATIONS: ReasonInfo(
        Flag.ORANGE,
        "Trop peu d'images sans nuages : {n_valid} observations valides, il en faut au moins "
        "{min_valid_observations}.",
        "Too few cloud-free images: {n_valid} valid observations, "
        "at least {min_valid_observations} are needed.",
    ),
    Reason.CLOUDY_GAP_TOO_LONG: ReasonInfo(
        Flag.ORANGE,
        "Une période nuageuse de {max_gap_days} jours sans observation dépasse le maximum de "
        "{max_cloudy_gap_days} jours : un événement a pu passer inaperçu.",
        "A cloudy period of {max_gap_days} days without observation exceeds the maximum of "
        "{max_cloudy_gap_days} days: an event may have been missed.",
    ),
    Reason.MARKER_NOT_ENOUGH_DATA: ReasonInfo(
        Flag.ORANGE,
        "Le marqueur d'activité n'a pas eu assez de données pour conclure.",
        "The activity marker did not have enough data to conclude.",
    ),
    Reason.CONFLICTING_MARKERS: ReasonInfo(
        Flag.ORANGE,
        "Les indicateurs satellitaires se contredisent : un examen humain est nécessaire.",
        "The satellite markers contradict each other: a human review is needed.",
    ),
    Reason.WINDOW_NOT_OVER: ReasonInfo(
        Flag.ORANGE,
        "La période de contrôle n'est pas terminée : le verdict attend la fin de la période.",
        "The control window is not over yet: the verdict waits for its end.",
    ),
    Reason.ACTIVITY_DETECTED: ReasonInfo(
        Flag.GREEN,
        "Une activité agricole (fauche ou pâturage) a été observée pendant la période de contrôle "
        "(confiance {activity_confidence}).",
        "Agricultural activity (mowing or grazing) was observed during the control window "
        "(confidence {activity_confidence}).",
    ),
    Reason.MOWING_DETECTED: ReasonInfo(
        Flag.GREEN,
        "Fauche détectée le(s) {mowing_dates} (confiance {mowing_confidence}).",
        "Mowing detected on {mowing_dates} (confidence {mowing_confidence}).",
    ),
    Reason.NO_ACTIVITY_DETECTED: ReasonInfo(
        Flag.RED,
        "Aucune fauche ni aucun pâturage n'a été observé entre le {window_start} et le {window_end}, "
        "malgré {n_valid} observations valides (confiance {activity_confidence}).",
        "No mowing nor grazing was observed between {window_start} and {window_end}, "
        "despite {n_valid} valid observations (confidence {activity_confidence}).",
    ),
    Reason.NO_ACTIVITY_SEEN: ReasonInfo(
        Flag.ORANGE,
        "Aucune fauche n'a été vue par satellite entre le {window_start} et le {window_end} "
        "({n_valid} observations valides), mais un pâturage léger n'est pas toujours visible : "
        "une photo ou une visite est nécessaire pour conclure.",
        "No mowing was seen from space between {window_start} and {window_end} "
        "({n_valid} valid observations), but light grazing is not always visible: "
        "a photo or a visit is needed to conclude.",
    ),
    Reason.MOWING_STRADDLES_WINDOW: ReasonInfo(
        Flag.ORANGE,
        "Une fauche a eu lieu entre deux observations ({straddling_mowing_intervals}) à cheval sur le "
        "début ou la fin de la période de contrôle du {window_start} au {window_end} : elle a pu avoir "
        "lieu en dehors. Une photo ou une visite est nécessaire pour conclure.",
        "A mowing happened between two observations ({straddling_mowing_intervals}) straddling the start "
        "or the end of the control window from {window_start} to {window_end}: it may have happened "
        "outside it. A photo or a visit is needed to conclude.",
    ),
    Reason.ACTIVITY_UNCERTAIN: ReasonInfo(
        Flag.ORANGE,
        "Les observations ne permettent pas de conclure sur l'activité agricole "
        "(confiance {activity_confidence}, seuil {activity_min_confidence}).",
        "The observations do not allow a conclusion on agricultural activity "
        "(confidence {activity_confidence}, threshold {activity_min_confidence}).",
    ),
    Reason.CROP_GROUP_CONFIRMED: ReasonInfo(
        Flag.GREEN,
        "Le groupe de culture déclaré ({declared_group}) est reconnu avec une probabilité de "
        "{declared_probability}.",
        "The declared crop group ({declared_group}) is recognised "
        "with a probability of {declared_probability}.",
    ),
    Reason.CROP_GROUP_CONTRADICTED: ReasonInfo(
        Flag.RED,
        "La culture observée ressemble au groupe {crop_predicted} (probabilité {crop_probability}) et non "
        "au groupe déclaré {declared_group} (probabilité au plus {declared_probability}).",
        "The observed crop looks like group {crop_predicted} (probability {crop_probability}), not the "
        "declared group {declared_group} (probability at most {declared_probability}).",
    ),
    Reason.CROP_GROUP_UNCERTAIN: ReasonInfo(
        Flag.ORANGE,
        "La reconnaissance de la culture est incertaine : groupe déclaré {declared_group} "
        "(probabilité {declared_probability}), groupe le plus probable {crop_predicted} "
        "(probabilité {crop_probability}).",
        "Crop recognition is uncertain: declared group {declared_group} (probability "
        "{declared_probability}), most likely group {crop_predicted} (probability {crop_probability}).",
    ),
    Reason.CROP_GROUP_SIMILAR: ReasonInfo(
        Flag.ORANGE,
        "La culture observée ressemble au groupe {crop_predicted} (probabilité {crop_probability}), "
        "proche du groupe déclaré {declared_group} : le satellite ne les distingue pas de façon sûre. "
        "Une photo permettra de conclure.",
        "The observed crop looks like group {crop_predicted} (probability {crop_probability}), close to the "
        "declared group {declared_group}: the satellite cannot tell them apart reliably. A photo will settle "
        "it.",
    ),
    Reason.CROP_IDLE_BUT_ACTIVE: ReasonInfo(
        Flag.ORANGE,
        "Le classifieur voit une terre non exploitée (groupe {crop_predicted}, probabilité "
        "{crop_probability}), mais une activité agricole (fauche, pâturage ou travail du sol) a été "
        "observée sur la parcelle (confiance {activity_confidence}) : les indicateurs se contredisent. "
        "Une photo permettra de conclure.",
        "The classifier sees unfarmed land (group {crop_predicted}, probability {crop_probability}), but "
        "farming (mowing, grazing or tillage) was observed on the parcel (confidence "
        "{activity_confidence}): the markers contradict each other. A photo will settle it.",
    ),
    Reason.NO_CROP_PREDICTION: ReasonInfo(
        Flag.ORANGE,
        "Aucune prédiction du type de culture n'est disponible pour cette parcelle.",
        "No crop-type prediction is available for this parcel.",
    ),
    Reason.DECLARED_GROUP_NOT_MODELLED: ReasonInfo(
        Flag.ORANGE,
        "Le modèle de reconnaissance des cultures ne connaît pas le groupe déclaré ({declared_group}).",
        "The crop recognition model does not know the declared group ({declared_group}).",
    ),
    Reason.DECLARED_GROUP_RARE_IN_TRAINING: ReasonInfo(
        Flag.ORANGE,
        "Le groupe déclaré ({declared_group}) est rare dans les parcelles d'apprentissage du modèle "
        "({training_parcels}, minimum {min_training_parcels}) : sa probabilité ({declared_probability}) "
        "est trop incertaine pour contredire la déclaration.",
        "The declared group ({declared_group}) is rare among the model's training parcels "
        "({training_parcels}, minimum {min_training_parcels}): its probability ({declared_probability}) "
        "is too uncertain to contradict the declaration.",
    ),
    Reason.HETEROGENEOUS_PARCEL: ReasonInfo(
        Flag.ORANGE,
        "La parcelle paraît hétérogène (écart-type du NDVI dans la parcelle {homogeneity}, "
        "maximum {max_ndvi_spread}) : elle porte peut-être plusieurs cultures.",
        "The parcel looks heterogeneous (NDVI standard deviation within the parcel {homogeneity}, "
        "maximum {max_ndvi_spread}): it may carry several crops.",
    ),
    Reason.NO_PLOUGHING_DETECTED: ReasonInfo(
        Flag.GREEN,
        "Aucun sol nu (labour, retournement) n'a été observé sur la prairie permanente.",
        "No bare soil (ploughing) was observed on the permanent grassland.",
    ),
    Reason.PLOUGHING_DETECTED: ReasonInfo(
        Flag.RED,
        "Un sol nu, signe d'un labour de la prairie permanente, a été observé le(s) {bare_soil_dates} "
        "(confiance {bare_soil_confidence}).",
        "Bare soil, a sign that the permanent grassland was ploughed, was observed on {bare_soil_dates} "
        "(confidence {bare_soil_confidence}).",
    ),
    Reason.BARE_SOIL_UNCERTAIN: ReasonInfo(
        Flag.ORANGE,
        "Un possible sol nu a été observé le(s) {bare_soil_dates}, avec une confiance insuffisante "
        "({bare_soil_confidence}) pour conclure.",
        "Possible bare soil was observed on {bare_soil_dates}, with too low a confidence "
        "({bare_soil_confidence}) to conclude.",
    ),
    Reason.BARE_SOIL_DRY_VEGETATION: ReasonInfo(
        Flag.ORANGE,
        "Un sol d'apparence nue a été observé le(s) {bare_soil_dates} (confiance {bare_soil_confidence}), "
        "mais l'indice de travail du sol (NDTI) y lit de la végétation sèche plutôt qu'un sol retourné : "
        "une prairie grillée par la sécheresse ou de la litière. Une photo ou une visite est nécessaire "
        "pour conclure.",
        "Bare-looking soil was observed on {bare_soil_dates} (confidence {bare_soil_confidence}), but "
        "the tillage index (NDTI) reads dry vegetation there rather than turned soil: a sward scorched "
        "by drought, or litter. A photo or a visit is needed to conclude.",
    ),
    Reason.BARE_SOIL_NO_LOST_COVER: ReasonInfo(
        Flag.ORANGE,
        "Un sol d'apparence nue a été observé le(s) {bare_soil_dates} (confiance {bare_soil_confidence}), "
        "sans couvert vert observé dans les semaines d'avant : c'est l'aspect d'une prairie en dormance "
        "(après l'hiver, la neige) plutôt que d'un retournement. Une photo ou une visite est nécessaire "
        "pour conclure.",
        "Bare-looking soil was observed on {bare_soil_dates} (confidence {bare_soil_confidence}), with no "
        "green cover observed in the weeks before: the look of a dormant sward (after the winter, the "
        "snow) rather than of a ploughing. A photo or a visit is needed to conclude.",
    ),
    Reason.FALLOW_UNDISTURBED: ReasonInfo(
        Flag.GREEN,
        "Aucune fauche ni aucun travail du sol n'a été observé sur la jachère entre le "
        "{protected_start} et le {protected_end}.",
        "No mowing nor tillage was observed on the fallow land "
        "between {protected_start} and {protected_end}.",
    ),
    Reason.FALLOW_MOWED_IN_PROTECTED_PERIOD: ReasonInfo(
        Flag.RED,
        "La jachère a été fauchée ou broyée entre deux observations ({protected_mowing_dates}), pendant "
        "la période d'interdiction du {protected_start} au {protected_end} (confiance {mowing_confidence}).",
        "The fallow land was mowed or mulched between two observations ({protected_mowing_dates}), during "
        "the protected period from {protected_start} to {protected_end} (confidence {mowing_confidence}).",
    ),
    Reason.FALLOW_MOWING_STRADDLES_PERIOD: ReasonInfo(
        Flag.ORANGE,
        "Une fauche a eu lieu entre deux observations ({straddling_mowing_intervals}) à cheval sur la "
        "période d'interdiction du {protected_start} au {protected_end} : elle a pu avoir lieu avant ou "
        "après. Une photo ou une visite est nécessaire pour conclure.",
        "A mowing happened between two observations ({straddling_mowing_intervals}) straddling the "
        "protected period from {protected_start} to {protected_end}: it may have happened before or "
        "after it. A photo or a visit is needed to conclude.",
    ),
    Reason.FALLOW_MOWING_NEAR_PERIOD_EDGE: ReasonInfo(
        Flag.ORANGE,
        "Une fauche a eu lieu entre deux observations ({near_edge_mowing_intervals}) dans la période "
        "d'interdiction du {protected_start} au {protected_end}, mais à moins de {edge_margin_days} jours "
        "de son bord : vue depuis l'espace, la date d'une fauche peut s'écarter de quelques jours de cet "
        "intervalle. Une photo ou une visite est nécessaire pour conclure.",
        "A mowing happened between two observations ({near_edge_mowing_intervals}) within the protected "
        "period from {protected_start} to {protected_end}, but less than {edge_margin_days} days from its "
        "edge: seen from space, the date of a cut can lie a few days outside that interval. A photo or a "
        "visit is needed to conclude.",
    ),
    Reason.FALLOW_TILLED_IN_PROTECTED_PERIOD: ReasonInfo(
        Flag.RED,
        "Un sol nu (travail du sol) a été observé sur la jachère le(s) {protected_bare_soil_dates}, "
        "pendant la période d'interdiction du {protected_start} au {protected_end} "
        "(confiance {bare_soil_confidence}).",
        "Bare soil (tillage) was observed on the fallow land on {protected_bare_soil_dates}, during the "
        "protected period from {protected_start} to {protected_end} (confidence {bare_soil_confidence}).",
    ),
    Reason.FALLOW_DISTURBANCE_UNCERTAIN: ReasonInfo(
        Flag.ORANGE,
        "Une possible intervention sur la jachère a été observée pendant la période d'interdiction, "
        "avec une confiance insuffisante pour conclure.",
        "A possible intervention on the fallow land was observed during the protected period, "
        "with too low a confidence to conclude.",
    ),
}
"""Reason code -> its flag and its French and English explanations."""


class _View:
    """Read-only mapping view that formats evidence values on demand ('?' when missing)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> str:
        return _fmt(self._data.get(key))


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value) if value else "-"
    return str(value)


def explain(reasons: Sequence[str], evidence: dict[str, Any], *, lang: str = "fr") -> str:
    """Plain-language explanation of a decision.

    Parameters
    ----------
    reasons
        Reason codes (values of :class:`Reason`), in the order they should be told.
    evidence
        The decision's evidence; fields named in the explanation templates are filled from it
        (missing ones show as ``?``).
    lang
        ``"fr"`` or ``"en"``.

    Returns
    -------
    str
        One sentence per reason, joined by spaces.
    """
    if lang not in ("fr", "en"):
        raise ValueError(f"unknown language {lang!r}: use 'fr' or 'en'")
    view = _View(evidence)
    parts = []
    for code in reasons:
        info = REASONS[Reason(code)]
        parts.append((info.fr if lang == "fr" else info.en).format_map(view))
    return " ".join(parts)
