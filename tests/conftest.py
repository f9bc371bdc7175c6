"""Shared fixtures: where the real data lives, and temporary workdirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _realdata_root() -> Path:
    env = os.environ.get("S3TR_REALDATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of ``../shared/data``; skips (or fails under ``S3TR_REQUIRE_REALDATA=1``) when absent."""
    root = _realdata_root()
    if not root.is_dir():
        if os.environ.get("S3TR_REQUIRE_REALDATA") == "1":
            pytest.fail(f"real data required but not found at {root} (set S3TR_REALDATA)")
        pytest.skip(f"real data not found at {root}")
    return root
