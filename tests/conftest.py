"""Fixtures shared by the whole suite."""

from __future__ import annotations

from tests.harness.fixtures import kamailio, kamailio_clean, pytest_runtest_makereport

__all__ = ["kamailio", "kamailio_clean", "pytest_runtest_makereport"]
