"""Fixtures of the integration tier."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test's workers once on each engine (CSVKAFKA_ENGINE is --engine's variable)."""
    monkeypatch.setenv("CSVKAFKA_ENGINE", request.param)
    return str(request.param)
