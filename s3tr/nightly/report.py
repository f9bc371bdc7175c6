"""The run report: one self-contained HTML page (figures inlined, nothing fetched from the web)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # reports are rendered on servers without a display
import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

if TYPE_CHECKING:
    from s3tr.nightly.pipeline import RunResult

__all__ = ["worst_flag", "write_report"]

FLAG_COLOURS = {"green": "#2e7d32", "orange": "#ef8f00", "red": "#c62828"}
_SEVERITY = {"green": 0, "orange": 1, "red": 2}


def worst_flag(decisions: pd.DataFrame) -> pd.Series:
    """The most severe flag of each parcel over all its controls (red > orange > green)."""
    severity = decisions["flag"].map(_SEVERITY)
    worst = severity.groupby(decisions["id_parcel"]).max()
    names = {v: k for k, v in _SEVERITY.items()}
    return worst.map(names)


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _flag_map(result: RunResult) -> str | None:
    if result.decisions.empty:
        return None
    worst = worst_flag(result.decisions)
    parcels = result.parcels.assign(flag=result.parcels["id_parcel"].map(worst).fillna("orange"))
    fig, ax = plt.subplots(figsize=(7, 7))
    for flag, colour in FLAG_COLOURS.items():
        sub = parcels[parcels["flag"] == flag]
        if not sub.empty:
            sub.plot(ax=ax, color=colour, edgecolor="white", linewidth=0.2)
    ax.set_axis_off()
    ax.set_title("Most severe flag per parcel")
    return _png(fig)


def _example_parcels(result: RunResult, n_per_flag: int = 2) -> list[str]:
    """A few grassland parcels of each colour for the min_activity control (or any control)."""
    d = result.decisions
    control = "min_activity" if (d["control"] == "min_activity").any() else d["control"].iloc[0]
    d = d[d["control"] == control].sort_values("id_parcel")
    chosen: list[str] = []
    for flag in ("red", "orange", "green"):
        chosen += d.loc[d["flag"] == flag, "id_parcel"].head(n_per_flag).tolist()
    return chosen


def _curves(result: RunResult) -> list[dict[str, Any]]:
    if result.decisions.empty or result.series.empty:
        return []
    series = result.series.copy()
    series["date"] = pd.to_datetime(series["date"])
    evidence = result.evidence.set_index("parcel_id") if "parcel_id" in result.evidence else result.evidence
    out = []
    for pid in _example_parcels(result):
        s = series[series["parcel_id"] == pid].sort_values("date")
        if s.empty:
            continue
        fig, ax = plt.subplots(figsize=(7, 2.6))
        valid = s["valid"] == 1
        ax.plot(s.loc[valid, "date"], s.loc[valid, "ndvi"], "o-", color="#2e7d32", ms=3, label="clear")
        ax.plot(
            s.loc[~valid, "date"], s.loc[~valid, "ndvi"], "x", color="#9e9e9e", ms=4, label="cloudy/invalid"
        )
        for col, colour, label in (
            ("mowing_dates", "#1565c0", "mowing"),
            ("bare_soil_dates", "#6d4c41", "bare soil"),
        ):
            dates = evidence.loc[pid, col] if pid in evidence.index and col in evidence else None
            for k, day in enumerate(str(dates).split(";") if isinstance(dates, str) and dates else []):
                ax.axvline(pd.Timestamp(day), color=colour, ls="--", lw=1, label=label if k == 0 else None)
        ax.set_ylim(-0.2, 1.0)
        ax.set_ylabel("NDVI")
        ax.legend(loc="lower left", fontsize=7, ncol=4)
        rows = result.decisions[result.decisions["id_parcel"] == pid]
        flags = ", ".join(f"{r.control}: {r.flag}" for r in rows.itertuples())
        code = result.parcels.loc[result.parcels["id_parcel"] == pid, "code_cultu"].iloc[0]
        ax.set_title(f"{pid} ({code})", fontsize=9)
        out.append({"id": pid, "code": code, "flags": flags, "png": _png(fig)})
    return out


def write_report(result: RunResult, path: Path, *, score: dict[str, Any] | None = None) -> Path:
    """Render the HTML run report of ``result`` to ``path`` (and ``run.json`` beside it)."""
    env = Environment(loader=PackageLoader("s3tr.nightly", "templates"), autoescape=select_autoescape())
    counts = result.flag_counts if not result.decisions.empty else pd.DataFrame()
    sync = result.sync
    summary = summarize(result, score=score)
    html = env.get_template("report.html.j2").render(
        result=result,
        summary=summary,
        counts=counts,
        sync=sync,
        map_png=_flag_map(result),
        curves=_curves(result),
        score=score,
        colours=FLAG_COLOURS,
    )
    path.write_text(html, encoding="utf-8")
    (path.parent / "run.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return path


def _items(result: RunResult) -> dict[str, Any]:
    """This run's work items: counts per status, each item's outcome and mean stage times."""
    items = getattr(result, "items", None)
    if items is None or items.empty:
        return {"planned": 0, "done": 0, "failed": 0, "list": [], "mean_stage_s": {}}
    rows = []
    stages: dict[str, list[float]] = {}
    for r in items.itertuples(index=False):
        timings = r.timings or {}
        for k, v in timings.items():
            stages.setdefault(k, []).append(float(v))
        rows.append(
            {
                "tile": r.tile,
                "acquisition_id": r.acquisition_id,
                "acquired_at": pd.Timestamp(r.acquired_at).isoformat(),
                "status": r.status,
                "attempts": int(r.attempts),
                "error": r.error,
                "timings_s": {k: round(float(v), 3) for k, v in timings.items()},
            }
        )
    status = items["status"].value_counts()
    return {
        "planned": len(items),
        "done": int(status.get("done", 0)),
        "failed": int(status.get("failed", 0)),
        "list": rows,
        "mean_stage_s": {k: round(sum(v) / len(v), 3) for k, v in stages.items()},
    }


def summarize(result: RunResult, *, score: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able summary of a run (what the report and ``run.json`` show)."""
    counts = result.flag_counts if not result.decisions.empty else pd.DataFrame()
    sync = result.sync
    return {
        "run_id": result.run_id,
        "status": getattr(result, "status", None),
        "parcels": len(result.parcels),
        "rejected_records": len(result.rejects),
        "acquisitions": result.acquisitions,
        "acquisitions_new": result.acquisitions_new,
        "plan": dict(getattr(result, "plan", {}) or {}),
        "items": _items(result),
        "parcels_redecided": int(getattr(result, "redecided", 0)),
        "flags": {c: {f: int(n) for f, n in row.items()} for c, row in counts.iterrows()},
        "cases": {k: int(v) for k, v in vars(sync).items()}
        if sync is not None and hasattr(sync, "__dict__")
        else sync,
        "failures": [vars(f) for f in result.failures],
        "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
        "score": score,
    }
