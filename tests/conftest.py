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


@pytest.fixture(scope="session")
def tensorflow_classifier():
    """The same model on the TensorFlow backend: the reference OpenVINO is checked against."""
    return load_classifier(backend="tensorflow")


@pytest.fixture
def explain_calls(monkeypatch) -> list:
    """The methods the app asks to explain during a test (its cached explanations cleared first)."""
    from app import caches

    calls = []
    real_explain = caches.explain

    def counting_explain(*args, **kwargs):
        calls.append(kwargs.get("method"))
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(caches, "explain", counting_explain)
    caches.explain_crop.clear()
    return calls
