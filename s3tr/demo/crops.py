"""The crop codes of the demo season and their regional mix.

The codes and crop groups are those of the French RPG nomenclature (the PAC declaration); the
demo only uses the fifteen-odd codes that make up the landscape around Poitiers (Vienne, 86):
a cereal / oilseed plain (soft wheat, winter barley, rapeseed, sunflower) with maize, some
protein crops and lucerne, grassland for the cattle and sheep farms of the valleys, and fallow.
The table is embedded here on purpose (the generator must not depend on reference files it
does not own); a test checks every (code, group) pair against the real nomenclature.

``kind`` says which crop calendar drives the parcel's phenology (see :mod:`s3tr.demo.phenology`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODES", "CROP_MIX", "FALLOW_GROUPS", "GRASSLAND_GROUPS", "CropCode", "crop"]


@dataclass(frozen=True)
class CropCode:
    """One RPG crop code as used by the demo.

    Attributes
    ----------
    code
        3-letter RPG ``CODE_CULTU``.
    group
        RPG ``CODE_GROUP`` (1..28).
    label
        French label of the nomenclature.
    kind
        Phenology calendar: ``winter_cereal``, ``winter_barley``, ``rapeseed``, ``sunflower``,
        ``maize``, ``spring_pea``, ``lucerne``, ``grassland``, ``fallow``, ``idle``.
    """

    code: str
    group: int
    label: str
    kind: str


CODES: dict[str, CropCode] = {
    c.code: c
    for c in (
        CropCode("BTH", 1, "Blé tendre d'hiver", "winter_cereal"),
        CropCode("ORH", 3, "Orge d'hiver", "winter_barley"),
        CropCode("BDH", 4, "Blé dur d'hiver", "winter_cereal"),
        CropCode("TTH", 4, "Triticale d'hiver", "winter_cereal"),
        CropCode("CZH", 5, "Colza d'hiver", "rapeseed"),
        CropCode("TRN", 6, "Tournesol", "sunflower"),
        CropCode("MIS", 2, "Maïs", "maize"),
        CropCode("MIE", 2, "Maïs ensilage", "maize"),
        CropCode("PPR", 8, "Pois de printemps semé avant le 31/05", "spring_pea"),
        CropCode("LUZ", 16, "Autre luzerne", "lucerne"),
        CropCode("PPH", 18, "Prairie permanente - herbe prédominante", "grassland"),
        CropCode("PRL", 18, "Prairie en rotation longue (6 ans ou plus)", "grassland"),
        CropCode("PTR", 19, "Autre prairie temporaire de 5 ans ou moins", "grassland"),
        CropCode("J6S", 11, "Jachère de 6 ans ou plus déclarée comme SIE", "fallow"),
        CropCode("J5M", 11, "Jachère de 5 ans ou moins", "fallow"),
        CropCode("SNE", 28, "Surface agricole temporairement non exploitée", "idle"),
    )
}

# Share of declared parcels per code, roughly the Vienne plain around Poitiers (RPG statistics give
# about a third of the arable land in soft wheat, then barley, rapeseed, sunflower; grassland is a
# quarter of the parcels in the valleys). SNE is only ever a *true* land use (abandoned land).
CROP_MIX: dict[str, float] = {
    "BTH": 0.29,
    "ORH": 0.09,
    "BDH": 0.03,
    "TTH": 0.02,
    "CZH": 0.09,
    "TRN": 0.10,
    "MIS": 0.06,
    "MIE": 0.02,
    "PPR": 0.03,
    "LUZ": 0.03,
    "PPH": 0.08,
    "PRL": 0.04,
    "PTR": 0.07,
    "J6S": 0.03,
    "J5M": 0.02,
}

GRASSLAND_GROUPS = frozenset({18, 19})
FALLOW_GROUPS = frozenset({11})


def crop(code: str) -> CropCode:
    """The :class:`CropCode` of ``code`` (``KeyError`` naming the known codes if absent)."""
    try:
        return CODES[code]
    except KeyError:
        raise KeyError(f"crop code {code!r} is not used by the demo; known: {sorted(CODES)}") from None
