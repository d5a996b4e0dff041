"""Shared test fixtures: the committed classifier, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from hematovision import load_classifier

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "blood-cells"


@pytest.fixture(scope="session")
def classifier():
    return load_classifier()
