"""Shared fixtures: the project root and offline plans of the shipped stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_STACKS = ("dev", "staging", "prod", "local", "pr-template")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT
