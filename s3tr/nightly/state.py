"""The decision state of a workdir: the last evidence and decisions of every parcel, and what they depend on.

Markers and decisions are recomputed only for the parcels whose inputs changed. The state file
(``<workdir>/state/decisions.pkl``, replaced atomically) keeps, per parcel, the evidence, the
decisions and a fingerprint of the declaration they were computed from, plus a context key
(rule set, marker and model versions, and which windows were still open on the ``as_of`` date).
A parcel is re-decided when its series changed (a new slot in its tile), when its declaration
fingerprint changed, when it is absent from the state or from the database's current decisions,
or for everyone when the context key changed.

The state is written *after* the decisions were synced to the database: a crash in between
leaves the state older than the database, so the next run recomputes those parcels and the
(idempotent) sync finds nothing to change.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from s3tr.frames import isin

__all__ = ["DecisionState", "declaration_fingerprints", "load_state", "save_state"]

_VERSION = 1


@dataclass
class DecisionState:
    """Evidence and decisions of every decided parcel, and what they were computed from."""

    context: str = ""
    fingerprints: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def merge(
        self,
        *,
        context: str,
        parcels: pd.Index,
        fingerprints: pd.Series,
        evidence: pd.DataFrame,
        decisions: pd.DataFrame,
    ) -> DecisionState:
        """The state after re-deciding ``fingerprints.index``; parcels not in ``parcels`` are dropped."""
        redone = set(fingerprints.index)
        keep_ev = (
            self.evidence[~isin(self.evidence.get("parcel_id", pd.Series(dtype=object)), redone)]
            if not self.evidence.empty
            else self.evidence
        )
        keep_dec = (
            self.decisions[~isin(self.decisions["id_parcel"], redone)]
            if not self.decisions.empty
            else self.decisions
        )
        ev = pd.concat([keep_ev, evidence], ignore_index=True) if not keep_ev.empty else evidence
        dec = pd.concat([keep_dec, decisions], ignore_index=True) if not keep_dec.empty else decisions
        wanted = set(parcels)
        if not ev.empty:
            ev = (
                ev[isin(ev["parcel_id"], wanted)]
                .sort_values("parcel_id", kind="stable")
                .reset_index(drop=True)
            )
        if not dec.empty:
            dec = (
                dec[isin(dec["id_parcel"], wanted)]
                .sort_values(["id_parcel", "control"], kind="stable")
                .reset_index(drop=True)
            )
        fp = pd.concat([self.fingerprints[~isin(self.fingerprints.index, redone)], fingerprints])
        fp = fp[isin(fp.index, wanted)].sort_index()
        return DecisionState(context, fp, ev, dec)


def declaration_fingerprints(declarations: pd.DataFrame) -> pd.Series:
    """A hash of each parcel's declared attributes (every column but the geometry), by ``id_parcel``."""
    cols = sorted(c for c in declarations.columns if c != "geometry")
    text = declarations[cols].astype(str).agg("\x1f".join, axis=1)
    fp = text.map(lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest())
    return pd.Series(fp.to_numpy(), index=declarations["id_parcel"].astype(str).to_numpy(), dtype=object)


def state_path(workdir: Path) -> Path:
    """Where the decision state of ``workdir`` lives."""
    return Path(workdir) / "state" / "decisions.pkl"


def load_state(workdir: Path) -> DecisionState:
    """The decision state of ``workdir`` (empty when there is none or it is of another layout)."""
    path = state_path(workdir)
    if not path.exists():
        return DecisionState()
    with open(path, "rb") as fh:
        version, state = pickle.load(fh)
    return state if version == _VERSION else DecisionState()


def save_state(workdir: Path, state: DecisionState) -> Path:
    """Write the state atomically (temporary file, fsync, rename)."""
    path = state_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump((_VERSION, state), fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path
