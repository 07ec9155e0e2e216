"""Settings and the entrypoint's wiring of the stack outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from training_jobs.serve.main import capture_target, platform_outputs
from training_jobs.serve.settings import ServeSettings


def test_stack_outputs_supply_the_captures_bucket_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outputs.json"
    buckets = {f"{role}_bucket": f"b-{role}" for role in ("raw", "curated", "models", "captures")}
    path.write_text(json.dumps({**buckets, "region": "eu-west-1"}))
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(path))
    from_outputs = ServeSettings(model_name="m")
    assert capture_target(from_outputs, platform_outputs(from_outputs)) == (
        "b-captures",
        "eu-west-1",
    )
    explicit = ServeSettings(model_name="m", capture_bucket="mine")
    assert capture_target(explicit, platform_outputs(explicit)) == ("mine", "eu-west-1")
    off = ServeSettings(model_name="m", capture_enabled=False)
    assert capture_target(off, platform_outputs(off)) == (None, None)


def test_env_prefix_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SERVE_MODEL_NAME", "from-env")
    monkeypatch.setenv("MLOPS_SERVE_BATCH_MAX_ROWS", "64")
    settings = ServeSettings(_cli_parse_args=["--batch-max-wait-ms", "2", "--no-capture-enabled"])
    assert (settings.model_name, settings.batch_max_rows, settings.batch_max_wait_ms) == (
        "from-env",
        64,
        2.0,
    )
    assert settings.capture_enabled is False
    assert settings.model_alias == "champion"


def test_a_buffer_smaller_than_a_batch_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"capture_buffer_records \(10\) must be at least"):
        ServeSettings(model_name="m", capture_batch_records=100, capture_buffer_records=10)


def test_bad_settings_name_the_flag_the_value_and_the_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from training_jobs.serve.main import main

    assert main(["--model-name", "churn", "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert "--port / MLOPS_SERVE_PORT = '99999'" in err
    assert "less than or equal to 65535" in err
    assert "Traceback" not in err
