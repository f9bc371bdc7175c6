"""Benchmark of the review sync: how long a night's decisions take to reach the review database.

Run: ``python benchmarks/review_sync.py [--parcels 100000] [--db URL] [--changed 0.05]``.

1. Creates a fresh review database (SQLite in a temp dir, or ``--db``: an *empty* database, e.g. a
   PostgreSQL one made with ``createdb``) at the head migration.
2. Makes ``--parcels`` parcels' decisions shaped like the demo's (every parcel a crop-group decision,
   one in five grassland with two more controls, one in twenty fallow; 85 % green, 12 % orange, 3 % red;
   evidence and explanations of the demo's sizes).
3. Times :func:`s3tr.review.cases.sync_decisions` three times, as three nights: the first season run
   (every decision new, a case opened per orange or red one), a night where ``--changed`` of the
   parcels changed flag (new revisions, cases opened, updated or cancelled, farmers notified), and a
   night where nothing changed (the usual incremental night only sends the re-decided parcels, so this
   is the worst case of a full re-decision).
4. The peer: the same decision rows written with the driver's fastest bulk path and nothing else
   (``COPY`` on PostgreSQL, ``executemany`` on SQLite) into a table of the same columns, the floor for
   writing them. Prints decisions per second of each night and the first night's ratio to the peer.
   The machine may be shared: compare figures of one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s3tr.review.cases import count_rows, sync_decisions  # noqa: E402
from s3tr.review.database import make_engine  # noqa: E402
from s3tr.review.migrate import upgrade  # noqa: E402

CAMPAIGN = 2025
_REASONS = {
    "green": ["crop_group_confirmed"],
    "orange": ["crop_group_uncertain"],
    "red": ["crop_group_contradicted"],
}


def decisions(n_parcels: int, *, seed: int = 0) -> pd.DataFrame:
    """Decisions of ``n_parcels`` synthetic parcels, shaped like the demo's."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"{86_000_000 + i:08d}" for i in range(n_parcels)])
    grass = rng.random(n_parcels) < 0.2
    fallow = ~grass & (rng.random(n_parcels) < 0.05)
    rows = [(p, "crop_group") for p in ids]
    rows += [(p, c) for p in ids[grass] for c in ("min_activity", "grassland_not_ploughed")]
    rows += [(p, "fallow") for p in ids[fallow]]
    df = pd.DataFrame(rows, columns=["id_parcel", "control"])
    df["flag"] = rng.choice(["green", "orange", "red"], size=len(df), p=[0.85, 0.12, 0.03])
    df = df.assign(
        campaign=CAMPAIGN,
        reasons=[list(_REASONS[f]) for f in df["flag"]],
        evidence=[
            {
                "declared_group": str(g),
                "crop_predicted": str(g if f == "green" else (g + 1) % 28),
                "crop_probability": round(float(p), 3),
                "crop_second": str((g + 2) % 28),
                "crop_second_probability": round(float(1 - p) / 2, 3),
                "declared_probability": round(float(p if f == "green" else (1 - p) / 4), 3),
            }
            for g, f, p in zip(
                rng.integers(1, 28, len(df)), df["flag"], rng.uniform(0.5, 1.0, len(df)), strict=True
            )
        ],
        explanation_fr=[
            f"Contrôle {c} — {f} : la parcelle a été examinée sur la saison."
            for c, f in zip(df["control"], df["flag"], strict=True)
        ],
        explanation_en=[
            f"Control {c} — {f}: the parcel was looked at over the season."
            for c, f in zip(df["control"], df["flag"], strict=True)
        ],
        ruleset_version="fr-2025.4",
        marker_version="markers-0.2.0",
        model_version="crop_group_demo",
        department="86",
        pacage=[f"086{int(p) % 1_000_000:06d}" for p in df["id_parcel"]],
        surf_parc=np.round(rng.gamma(2.0, 2.5, len(df)), 2),
    )
    return df


def _night(engine, df: pd.DataFrame, run_id: str) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    summary = sync_decisions(engine, df, run_id=run_id, now=datetime.now(UTC))
    return time.perf_counter() - t0, summary.as_dict()


def _peer(engine, df: pd.DataFrame) -> float:  # type: ignore[no-untyped-def]
    """Seconds to bulk-write the same rows into a bare table of the decision columns."""
    import json

    text = ("id_parcel", "control", "flag", "explanation_fr", "explanation_en", "ruleset_version",
            "marker_version", "model_version", "department", "pacage")  # fmt: skip
    columns = {"campaign": "int", **dict.fromkeys(text, "text"), "reasons": "jsonb", "evidence": "jsonb"}
    columns["surf_parc"] = "float8"
    cols = list(columns)
    rows = [
        tuple(json.dumps(v) if isinstance(v, list | dict) else v for v in r)
        for r in df[cols].itertuples(index=False, name=None)
    ]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            cur.execute(f"CREATE TABLE bench_peer ({', '.join(f'{c} {t}' for c, t in columns.items())})")
            raw.commit()
            t0 = time.perf_counter()
            with cur.copy(f"COPY bench_peer ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        else:
            cur.execute(f"CREATE TABLE bench_peer ({', '.join(cols)})")
            raw.commit()
            t0 = time.perf_counter()
            cur.executemany(f"INSERT INTO bench_peer VALUES ({', '.join('?' * len(cols))})", rows)
        raw.commit()
        return time.perf_counter() - t0
    finally:
        raw.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=100_000, help="parcels (about 1.45 decisions each)")
    ap.add_argument("--db", help="URL of an empty database (default: SQLite in a temp dir)")
    ap.add_argument("--changed", type=float, default=0.05, help="share of parcels changing flag on night 2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'review.db'}"
        upgrade(url)
        engine = make_engine(url)
        df = decisions(args.parcels)
        print(f"{engine.dialect.name}: {args.parcels:,} parcels, {len(df):,} decisions")
        nights = [("1 first run, all new", df)]
        rng = np.random.default_rng(1)
        flip = df["id_parcel"].isin(rng.choice(df["id_parcel"].unique(), int(args.changed * args.parcels)))
        changed = df.copy()
        changed.loc[flip, "flag"] = changed.loc[flip, "flag"].map(
            {"green": "orange", "orange": "green", "red": "orange"}
        )
        changed["reasons"] = [list(_REASONS[f]) for f in changed["flag"]]
        nights += [(f"2 {args.changed:.0%} of parcels changed", changed), ("3 nothing changed", changed)]
        first = 0.0
        for k, (name, batch) in enumerate(nights):
            seconds, summary = _night(engine, batch, f"bench-{k}")
            first = first or seconds
            print(
                f"  night {name:28s} {seconds:7.1f} s  {len(batch) / seconds:8,.0f} decisions/s  "
                f"new {summary['decisions_new']:,} changed {summary['decisions_changed']:,} "
                f"cases opened {summary['cases_opened']:,} cancelled {summary['cases_cancelled']:,}"
            )
        print(f"  rows: decisions {count_rows(engine, 'decisions'):,}, cases {count_rows(engine, 'cases'):,}")
        peer = _peer(engine, df)
        print(f"  peer: bare bulk write of the same rows {peer:7.1f} s  {len(df) / peer:8,.0f} rows/s")
        print(f"  first night / peer: {first / peer:.1f}x")
        engine.dispose()


if __name__ == "__main__":
    main()
