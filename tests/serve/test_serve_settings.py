"""Settings and the entrypoint's wiring of the stack outputs, in the jobs' frame."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from training_jobs import contract
from training_jobs.common import region, tracking_uri
from training_jobs.serve.main import capture_target, main
from training_jobs.serve.settings import ServeSettings


@pytest.fixture(autouse=True)
def _no_platform_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A developer's shell may export the platform's variables; these tests set their own."""
    for name in list(os.environ):
        if name.startswith(contract.ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield


def test_stack_outputs_supply_the_captures_bucket_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outputs.json"
    buckets = {f"{role}_bucket": f"b-{role}" for role in contract.DATA_BUCKET_ROLES}
    path.write_text(json.dumps({**buckets, "region": "eu-west-1"}))
    monkeypatch.setenv(contract.VAR_STACK_OUTPUTS, str(path))
    from_outputs = ServeSettings(model_name="m")
    assert capture_target(from_outputs) == "b-captures"
    assert region(from_outputs) == "eu-west-1"
    explicit = ServeSettings(model_name="m", capture_bucket="mine")
    assert capture_target(explicit) == "mine"
    off = ServeSettings(model_name="m", capture_enabled=False)
    assert capture_target(off) is None


def test_no_captures_bucket_anywhere_serves_without_capturing() -> None:
    assert capture_target(ServeSettings(model_name="m")) is None


def test_env_prefix_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.VAR_SERVE_MODEL_NAME, "from-env")
    monkeypatch.setenv("MLOPS_SERVE_BATCH_MAX_ROWS", "64")
    settings = ServeSettings(_cli_parse_args=["--batch-max-wait-ms", "2", "--no-capture-enabled"])
    assert (settings.model_name, settings.batch_max_rows, settings.batch_max_wait_ms) == (
        "from-env",
        64,
        2.0,
    )
    assert settings.capture_enabled is False
    assert settings.model_alias == "champion"


def test_the_deployments_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # What infra/components/model_server.py and infra/platform.py write into the Deployment.
    for name, value in {
        contract.VAR_SERVE_HOST: "0.0.0.0",  # noqa: S104 - the pod's address, as the plan sets it
        contract.VAR_SERVE_PORT: "8080",
        contract.VAR_SERVE_DRAIN_GRACE_S: "20",
        contract.VAR_SERVE_MODEL_NAME: "churn-pr-7",
        contract.VAR_SERVE_TRACKING_URI: "http://mlflow.mlops-tracking.svc:5000",
        contract.VAR_SERVE_CAPTURE_BUCKET: "captures-pr-7",
    }.items():
        monkeypatch.setenv(name, value)
    settings = ServeSettings()
    assert (settings.host, settings.port, settings.drain_grace_s) == ("0.0.0.0", 8080, 20.0)  # noqa: S104
    assert settings.model_name == "churn-pr-7"
    assert tracking_uri(settings) == "http://mlflow.mlops-tracking.svc:5000"
    assert capture_target(settings) == "captures-pr-7"


def test_platform_wide_names_are_read_below_the_servers_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(contract.VAR_TRACKING_URI, "http://platform:5000")
    monkeypatch.setenv(contract.VAR_MODEL_NAME, "platform-model")
    monkeypatch.setenv(contract.bucket_variable(contract.BUCKET_CAPTURES), "platform-captures")
    shared = ServeSettings()
    assert (shared.tracking_uri, shared.model_name) == ("http://platform:5000", "platform-model")
    assert capture_target(shared) == "platform-captures"

    monkeypatch.setenv(contract.VAR_SERVE_TRACKING_URI, "http://own:5000")
    monkeypatch.setenv(contract.VAR_SERVE_CAPTURE_BUCKET, "own-captures")
    own = ServeSettings()
    assert own.tracking_uri == "http://own:5000"
    assert capture_target(own) == "own-captures"
    assert ServeSettings(_cli_parse_args=["--tracking-uri", "http://flag:5000"]).tracking_uri == (
        "http://flag:5000"
    )


def test_a_buffer_smaller_than_a_batch_is_refused() -> None:
    with pytest.raises(
        ValidationError,
        match=r"--capture-buffer-records / MLOPS_SERVE_CAPTURE_BUFFER_RECORDS \(10\) must be at "
        r"least --capture-batch-records / MLOPS_SERVE_CAPTURE_BATCH_RECORDS \(100\)",
    ):
        ServeSettings(model_name="m", capture_batch_records=100, capture_buffer_records=10)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model-name", "churn", "--port", "99999"],
            "--port / MLOPS_SERVE_PORT: '99999' is not allowed: "
            "Input should be less than or equal to 65535",
        ),
        (
            ["--model-name", "churn", "--max-concurrency", "many"],
            "--max-concurrency / MLOPS_SERVE_MAX_CONCURRENCY: 'many' is not allowed: "
            "Input should be a valid integer",
        ),
        ([], "--model-name / MLOPS_SERVE_MODEL_NAME / MLOPS_MODEL_NAME: not set; it is required"),
        (
            [
                "--model-name",
                "churn",
                "--capture-batch-records",
                "10",
                "--capture-buffer-records",
                "5",
            ],
            "--capture-buffer-records / MLOPS_SERVE_CAPTURE_BUFFER_RECORDS (5) must be at least",
        ),
        (["--model-name", "churn", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_settings_name_the_flag_the_value_and_the_rule(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("python -m training_jobs.serve: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_no_tracking_uri_anywhere_is_refused_before_the_server_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--model-name", "churn", "--port", "0"]) == 2
    assert capsys.readouterr().err == (
        "python -m training_jobs.serve: error: --tracking-uri / MLOPS_SERVE_TRACKING_URI / "
        "MLOPS_TRACKING_URI: not set, and neither the stack outputs nor MLFLOW_TRACKING_URI "
        "name an MLflow server; give its URL (e.g. http://127.0.0.1:5000)\n"
    )


def test_a_broken_stack_outputs_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert main(["--model-name", "churn", "--stack-outputs", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"python -m training_jobs.serve: error: MLOPS_STACK_OUTPUTS: file {str(missing)!r} "
        "does not exist\n"
    )
