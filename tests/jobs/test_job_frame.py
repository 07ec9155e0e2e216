"""One frame for every job (`training_jobs.common.run_job`): flags, errors, platform, logs.

Every job's `main` — the pipeline steps, the lifecycle, the drift job, the model server and
the verify probe — parses its settings the same way, reports a bad one as one line on
stderr naming it (exit 2, never a traceback), and refuses to run without an MLflow server
rather than track into MLflow's `./mlruns` fallback. (The plan's own job definitions and
model server Deployment are read with the real settings classes in tests/contract.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.conftest import BUCKETS, Platform
from tests.workloads import SETTINGS
from training_jobs import contract, evaluate, lifecycle, prepare, register, train, verify
from training_jobs.common import (
    BaseJobSettings,
    JobSettings,
    flag,
    parse_settings,
)
from training_jobs.drift import job as drift
from training_jobs.serve import main as serve
from training_jobs.serve.settings import ServeSettings

Main = Callable[[Sequence[str] | None], int]

MAINS: dict[str, Main] = {
    contract.JOB_PREPARE: prepare.main,
    contract.JOB_TRAIN: train.main,
    contract.JOB_EVALUATE: evaluate.main,
    contract.JOB_REGISTER: register.main,
    contract.JOB_DRIFT: drift.main,
    contract.MODULE_LIFECYCLE: lifecycle.main,
    contract.MODULE_SERVE: serve.main,
    contract.MODULE_VERIFY: verify.main,
}


@pytest.fixture(autouse=True)
def _clean_environment(aws_env: None) -> Iterator[None]:
    """No MLOPS_* or MLFLOW_TRACKING_URI from the developer's shell (aws_env clears them)."""
    yield


def _fails(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


# --- a bad value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "argv", "message"),
    [
        (
            contract.JOB_PREPARE,
            ["--holdout-fraction", "0"],
            "--holdout-fraction / MLOPS_HOLDOUT_FRACTION: '0' is not allowed: Input should be "
            "greater than 0",
        ),
        (
            contract.JOB_TRAIN,
            ["--max-iter", "1"],
            "--max-iter / MLOPS_MAX_ITER: '1' is not allowed: Input should be greater than or "
            "equal to 10",
        ),
        (
            contract.JOB_EVALUATE,
            ["--min-roc-auc", "1.5"],
            "--min-roc-auc / MLOPS_MIN_ROC_AUC: '1.5' is not allowed: Input should be less than "
            "or equal to 1",
        ),
        (
            contract.JOB_REGISTER,
            ["--run-id", "latest"],
            "--run-id / MLOPS_RUN_ID: 'latest' is not allowed: String should match pattern",
        ),
        (
            contract.MODULE_LIFECYCLE,
            ["--dataset", "../etc"],
            "--dataset / MLOPS_DATASET: '../etc' is not allowed: String should match pattern",
        ),
        (
            contract.JOB_DRIFT,
            ["--chunk-rows", "10"],
            "--chunk-rows / MLOPS_DRIFT_CHUNK_ROWS: '10' is not allowed: Input should be "
            "greater than or equal to 1000",
        ),
        (
            contract.MODULE_SERVE,
            ["--model-name", "churn", "--port", "-1"],
            "--port / MLOPS_SERVE_PORT: '-1' is not allowed: Input should be greater than or "
            "equal to 0",
        ),
        (
            contract.MODULE_VERIFY,
            ["--experiment", ""],
            "--experiment / MLOPS_EXPERIMENT: '' is not allowed: String should match pattern",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_with_exit_2(
    job: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(MAINS[job], argv, capsys)
    assert err.startswith(f"python -m training_jobs.{job}: error: {message}"), err


@pytest.mark.parametrize("job", sorted(MAINS))
def test_an_unknown_flag_is_one_line_with_exit_2(
    job: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(MAINS[job], ["--no-such-flag", "1"], capsys)
    assert err == (
        f"python -m training_jobs.{job}: error: error parsing CLI: unrecognized arguments: "
        "--no-such-flag 1 (see --help)\n"
    )


def test_a_bad_value_in_the_environment_names_the_variable_it_came_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(contract.VAR_MODEL_NAME, "two words")
    for job in (contract.JOB_TRAIN, contract.JOB_DRIFT, contract.MODULE_SERVE):
        err = _fails(MAINS[job], [], capsys)
        assert f"{SETTINGS[job].flag('model_name')}: 'two words' is not allowed" in err
        assert contract.VAR_MODEL_NAME in err


# --- no MLflow server ---------------------------------------------------------------------

_EXPECTED_TRACKING = (
    "not set, and neither the stack outputs nor MLFLOW_TRACKING_URI name an MLflow server; "
    "give its URL (e.g. http://127.0.0.1:5000)\n"
)


@pytest.mark.parametrize(
    ("job", "argv", "names"),
    [
        (contract.JOB_TRAIN, [], "--tracking-uri / MLOPS_TRACKING_URI"),
        (contract.JOB_EVALUATE, [], "--tracking-uri / MLOPS_TRACKING_URI"),
        (contract.JOB_REGISTER, [], "--tracking-uri / MLOPS_TRACKING_URI"),
        (contract.MODULE_LIFECYCLE, [], "--tracking-uri / MLOPS_TRACKING_URI"),
        (contract.MODULE_VERIFY, [], "--tracking-uri / MLOPS_TRACKING_URI"),
        (contract.JOB_DRIFT, [], "--tracking-uri / MLOPS_DRIFT_TRACKING_URI / MLOPS_TRACKING_URI"),
        (
            contract.MODULE_SERVE,
            ["--model-name", "churn"],
            "--tracking-uri / MLOPS_SERVE_TRACKING_URI / MLOPS_TRACKING_URI",
        ),
    ],
)
def test_every_job_that_uses_mlflow_refuses_to_run_without_a_tracking_uri(
    job: str,
    argv: list[str],
    names: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The stack outputs name the buckets but no tracking server (a stack without MLflow).
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(BUCKETS | {"region": "us-east-1"}))
    monkeypatch.chdir(tmp_path)  # where MLflow's fallback would have written ./mlruns
    err = _fails(MAINS[job], [*argv, "--stack-outputs", str(outputs)], capsys)
    assert err == f"python -m training_jobs.{job}: error: {names}: {_EXPECTED_TRACKING}"
    assert not (tmp_path / "mlruns").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_prepare_uses_no_mlflow_and_needs_no_tracking_uri(
    platform: Platform, sample: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    platform.put_raw(sample)
    assert prepare.main(["--stack-outputs", str(platform.outputs_path)]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (done["job"], done["step"]) == (contract.JOB_PREPARE, "done")


# --- the platform, as the state machine hands it to each step ---------------------------
# (the plan's job definitions and Deployment, parsed with these classes: tests/contract)


def test_the_state_machines_execution_variable_reaches_the_pipeline_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    execution = "arn:aws:states:us-east-1:123456789012:execution:retrain:run-1"
    monkeypatch.setenv(contract.PIPELINE_EXECUTION_VARIABLE, execution)
    for job in contract.PIPELINE_JOBS:
        settings = SETTINGS[job]()
        assert isinstance(settings, JobSettings)
        assert settings.pipeline_execution == execution


# --- the model server in the frame --------------------------------------------------------


def test_the_server_runs_in_the_frame_and_logs_json_steps(
    platform: Platform,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started: dict[str, Any] = {}

    def stub_run(settings: ServeSettings, **clients: Any) -> None:
        started.update(clients, settings=settings)

    monkeypatch.setattr(serve, "run", stub_run)
    monkeypatch.setattr(serve, "configure_logging", lambda *_: None)  # the test's own logging
    monkeypatch.setenv(contract.VAR_TRACKING_URI, tracking_uri)
    code = serve.main(["--model-name", "churn", "--stack-outputs", str(platform.outputs_path)])

    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["job"], line["step"]) for line in lines] == [
        (contract.MODULE_SERVE, "serve"),
        (contract.MODULE_SERVE, "done"),
    ]
    assert lines[0]["tracking_uri"] == tracking_uri
    assert lines[0]["capture_bucket"] == BUCKETS["captures_bucket"]  # from the stack outputs
    assert started["capture_bucket"] == BUCKETS["captures_bucket"]
    assert started["s3"] is not None
    assert started["source"].name == "churn"


# --- spelling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_cls", "field", "spelled"),
    [
        (JobSettings, "raw_key", "--raw-key / MLOPS_RAW_KEY"),
        (JobSettings, "tracking_uri", "--tracking-uri / MLOPS_TRACKING_URI"),
        (drift.DriftSettings, "last_hours", "--last-hours / MLOPS_DRIFT_LAST_HOURS"),
        (
            drift.DriftSettings,
            "curated_bucket",
            "--curated-bucket / MLOPS_DRIFT_CURATED_BUCKET / MLOPS_CURATED_BUCKET",
        ),
        (
            ServeSettings,
            "capture_bucket",
            "--capture-bucket / MLOPS_SERVE_CAPTURE_BUCKET / MLOPS_CAPTURES_BUCKET",
        ),
        (ServeSettings, "port", "--port / MLOPS_SERVE_PORT"),
    ],
)
def test_settings_are_named_by_flag_and_variables_in_precedence_order(
    settings_cls: type[BaseJobSettings], field: str, spelled: str
) -> None:
    assert settings_cls.flag(field) == spelled
    assert flag(field) == f"--{field.replace('_', '-')} / MLOPS_{field.upper()}"


def test_flags_win_over_the_jobs_variables_which_win_over_the_platforms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(contract.bucket_variable(contract.BUCKET_MODELS), "platform")
    assert drift.DriftSettings().models_bucket == "platform"
    monkeypatch.setenv("MLOPS_DRIFT_MODELS_BUCKET", "drift")
    assert drift.DriftSettings().models_bucket == "drift"
    settings = parse_settings(drift.DriftSettings, ["--models-bucket", "flag"], "drift")
    assert settings.models_bucket == "flag"


def test_only_the_platform_wide_settings_have_platform_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MLOPS_PORT is nobody's variable: the server's port is MLOPS_SERVE_PORT only.
    monkeypatch.setenv("MLOPS_PORT", "1234")
    monkeypatch.setenv("MLOPS_CHUNK_ROWS", "5000")
    assert ServeSettings(model_name="m").port == 8080
    assert drift.DriftSettings().chunk_rows == 250_000
