"""The local platform for real: the local stack's plan, recorded from this checkout, run on
the container engine with the images built from the same sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import plan_for
from tests.images.conftest import built, engine

__all__ = ["built", "engine", "local_plan_path"]


@pytest.fixture(scope="session")
def local_plan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "local-plan.json"
    path.write_text(plan_for("local").to_json())
    return path
