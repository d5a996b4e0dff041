"""Fixtures for every app test."""

from __future__ import annotations

import pytest

from hematovision.model.model_card import CARD_PATH_ENV


@pytest.fixture(autouse=True)
def no_real_card_override(monkeypatch):
    # The Model page reads $HEMATOVISION_MODEL_CARD when set; tests choose explicitly.
    monkeypatch.delenv(CARD_PATH_ENV, raising=False)

