"""Which controls apply to which declared crop.

The code list is package data, ``s3tr/decide/data/crop_controls.csv`` (``geodata/README.md``
points here). Each row either sets the controls of a whole crop group (``scope=group``, ``key`` =
``code_group`` 1..28) or overrides them for one crop code (``scope=code``, ``key`` =
``code_cultu``). A parcel's controls are those of its code when the code has a row, else those
of its declared group; a group without a row has no control (logged once).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import pandas as pd

from s3tr.decide.flags import Control
from s3tr.errors import ConfigError

__all__ = ["CROP_CONTROLS_CSV", "applicable_controls", "controls_for", "load_crop_controls"]

logger = logging.getLogger(__name__)

CROP_CONTROLS_CSV = Path(__file__).with_name("data") / "crop_controls.csv"
_CONTROL_COLUMNS = [c.value for c in Control]


@lru_cache(maxsize=4)
def load_crop_controls(path: str | Path | None = None) -> pd.DataFrame:
    """Read and check the crop-code -> controls table.

    Returns
    -------
    pandas.DataFrame
        Columns ``scope`` (``group``|``code``), ``key`` (str), one bool column per control id,
        ``note``.

    Raises
    ------
    ConfigError
        When a column is missing, a scope is unknown, a key is duplicated or a flag is not 0/1.
    """
    path = Path(path or CROP_CONTROLS_CSV)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except OSError as exc:
        raise ConfigError(f"cannot read crop control list {path}: {exc}") from exc
    missing = {"scope", "key", *_CONTROL_COLUMNS} - set(table.columns)
    if missing:
        raise ConfigError(f"{path}: missing columns {sorted(missing)}")
    bad_scope = table.loc[~table["scope"].isin(["group", "code"])]
    if len(bad_scope):
        raise ConfigError(f"{path}: row(s) {list(bad_scope.index + 2)} have a scope other than group|code")
    table["key"] = table["key"].str.strip().str.upper()
    dupes = table.loc[table.duplicated(["scope", "key"], keep=False)]
    if len(dupes):
        raise ConfigError(f"{path}: duplicated keys {sorted(set(dupes['key']))}")
    for col in _CONTROL_COLUMNS:
        bad = ~table[col].isin(["0", "1"])
        if bad.any():
            raise ConfigError(f"{path}: column {col} must be 0 or 1 (lines {list(table.index[bad] + 2)})")
        table[col] = table[col] == "1"
    return table


def controls_for(code_cultu: str | None, code_group: int | str | None) -> list[Control]:
    """The controls that apply to one declared crop (code first, then group)."""
    table = load_crop_controls()
    row = None
    if code_cultu:
        hit = table[(table["scope"] == "code") & (table["key"] == str(code_cultu).strip().upper())]
        if len(hit):
            row = hit.iloc[0]
    if row is None and code_group is not None and not pd.isna(code_group):
        hit = table[(table["scope"] == "group") & (table["key"] == str(int(code_group)))]
        if len(hit):
            row = hit.iloc[0]
    if row is None:
        return []
    return [Control(c) for c in _CONTROL_COLUMNS if bool(row[c])]


def applicable_controls(parcels: pd.DataFrame) -> pd.DataFrame:
    """One row per (parcel, applicable control), in the order of the parcels then of :class:`Control`.

    Parameters
    ----------
    parcels
        Columns ``id_parcel``, ``code_cultu`` (str) and ``code_group`` (int-like, may be NA).

    Returns
    -------
    pandas.DataFrame
        Columns ``id_parcel`` and ``control`` (str), with the parcels' original index dropped.
    """
    table = load_crop_controls()
    codes = table[table["scope"] == "code"].set_index("key")[_CONTROL_COLUMNS]
    groups = table[table["scope"] == "group"].set_index("key")[_CONTROL_COLUMNS]
    code_key = parcels["code_cultu"].astype("string").str.strip().str.upper()
    group_num = pd.to_numeric(parcels["code_group"], errors="coerce")
    group_key = group_num.astype("Int64").astype("string")
    by_code = codes.reindex(code_key.fillna("").to_numpy())
    by_group = groups.reindex(group_key.fillna("").to_numpy())
    has_code = code_key.fillna("").isin(codes.index).to_numpy()
    flags = by_group.to_numpy(dtype=object)
    flags[has_code] = by_code.to_numpy(dtype=object)[has_code]
    flags = pd.DataFrame(flags, columns=_CONTROL_COLUMNS).fillna(False).astype(bool)
    unknown = ~has_code & ~group_key.fillna("").isin(groups.index).to_numpy()
    if unknown.any():
        logger.info(
            "%d parcel(s) with a crop group outside the control list (groups %s): no control applies",
            int(unknown.sum()),
            sorted(set(group_key[unknown].fillna("NA"))),
        )
    flags.insert(0, "id_parcel", parcels["id_parcel"].astype(str).to_numpy())
    long = flags.melt(id_vars="id_parcel", var_name="control", value_name="applies")
    long["_order"] = long.groupby("control", sort=False).cumcount()
    long["_c"] = long["control"].map({c: i for i, c in enumerate(_CONTROL_COLUMNS)})
    long = long[long["applies"]].sort_values(["_order", "_c"], kind="stable")
    return long[["id_parcel", "control"]].reset_index(drop=True)
