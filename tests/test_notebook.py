"""The walkthrough notebook runs top to bottom on a small demo run (so it stays true)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from s3tr.demo import generate_season
from s3tr.demo.runner import demo_run_config
from s3tr.nightly.pipeline import run_pipeline

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    root = work / "demo"
    generate_season(
        root, seed=5, n_parcels=60, area_size_m=2000.0, start=date(2025, 4, 1), end=date(2025, 7, 31)
    )
    run_pipeline(
        demo_run_config(root, start=date(2025, 4, 1), end=date(2025, 7, 31), workers=1), workdir=work
    )

    monkeypatch.setenv("S3TR_WORKDIR", str(work))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "clear observations of" in outputs
    assert "FR:" in outputs and "EN:" in outputs
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert os.environ["S3TR_WORKDIR"] == str(work)
