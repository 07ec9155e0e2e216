"""The embedded local platform: seeding from a plan, state persistence, process handling,
and one end-to-end run against real moto_server and MLflow server processes."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from training_jobs import lifecycle
from training_jobs.local import demo
from training_jobs.local.moto_host import load_state, save_state
from training_jobs.local.processes import ManagedProcess, ServerError, port_in_use
from training_jobs.local.seed import PlanError, buckets_in, read_plan, seed, write_outputs
from training_jobs.local.stack import LocalConfig, LocalPlatform, applied_env
from training_jobs.platform import load_outputs
from training_jobs.tracking import make_client

PLAN_PATH = Path(__file__).parent / "fixtures" / "plan_local.json"
DATA_BUCKETS = {
    "raw_bucket": "mlops-local-raw-61518bf",
    "curated_bucket": "mlops-local-curated-bd567d0",
    "models_bucket": "mlops-local-models-3670c21",
    "captures_bucket": "mlops-local-captures-8f37829",
}


@pytest.fixture
def plan() -> dict[str, Any]:
    return read_plan(PLAN_PATH)


def test_buckets_in_the_plan_with_their_versioning(plan: dict[str, Any]) -> None:
    assert buckets_in(plan) == {
        **dict.fromkeys(DATA_BUCKETS.values(), True),
        "mlops-local-access-logs-66126ec": True,
    }


def test_versioning_is_found_through_the_dependency_edge_when_the_name_is_unresolved(
    plan: dict[str, Any],
) -> None:
    for resource in plan["resources"]:
        if resource["type"].endswith("BucketVersioning") and "raw" in resource["name"]:
            resource["inputs"]["bucket"] = "unknown-id"
        if resource["type"].endswith("BucketVersioning") and "models" in resource["name"]:
            resource["inputs"]["versioningConfiguration"]["status"] = "Suspended"

    found = buckets_in(plan)

    assert found[DATA_BUCKETS["raw_bucket"]] is True
    assert found[DATA_BUCKETS["models_bucket"]] is False


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(schema=2), "plan schema 2 is not supported (expected 1)"),
        (lambda p: p["outputs"].pop("curated_bucket"), "plan outputs lack curated_bucket"),
        (
            lambda p: p["outputs"].update(raw_bucket="elsewhere"),
            "plan outputs name buckets the plan does not create: raw_bucket=elsewhere",
        ),
        (
            lambda p: next(r for r in p["resources"] if r["type"] == "aws:s3/bucket:Bucket")[
                "inputs"
            ].pop("bucket"),
            "has no physical name (inputs.bucket)",
        ),
    ],
)
def test_plans_that_cannot_seed_are_refused(
    plan: dict[str, Any], mutate: Any, message: str
) -> None:
    broken = copy.deepcopy(plan)
    mutate(broken)
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        seed(broken, s3=None)


def test_read_plan_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(
        PlanError, match=r"--plan: '.*missing.json' does not exist; write it with `mlops plan"
    ):
        read_plan(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(PlanError, match=r"--plan: '.*bad.json' is not JSON"):
        read_plan(tmp_path / "bad.json")


def test_seed_creates_versioned_buckets_idempotently_and_writes_outputs(
    aws_env: None, plan: dict[str, Any], tmp_path: Path
) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        first = seed(plan, s3)
        s3.put_object(Bucket=DATA_BUCKETS["raw_bucket"], Key="keep.csv", Body=b"a")
        second = seed(plan, s3)

        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert set(DATA_BUCKETS.values()) <= names
        for name in DATA_BUCKETS.values():
            assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        assert len(first.created) == 5 and second.created == ()
        assert s3.list_objects_v2(Bucket=DATA_BUCKETS["raw_bucket"])["KeyCount"] == 1

    outputs = load_outputs(write_outputs(first.outputs, tmp_path / "outputs.json"))
    assert (outputs.raw_bucket, outputs.models_bucket) == (
        DATA_BUCKETS["raw_bucket"],
        DATA_BUCKETS["models_bucket"],
    )


def test_builtin_plan_seeds_the_four_data_buckets(aws_env: None) -> None:
    with mock_aws():
        result = seed(demo.builtin_plan(), boto3.client("s3", region_name="us-east-1"))
    assert sorted(result.buckets) == [
        "mlops-local-captures",
        "mlops-local-curated",
        "mlops-local-models",
        "mlops-local-raw",
    ]
    assert all(result.buckets.values())


def test_moto_state_round_trip_keeps_version_ids(aws_env: None, tmp_path: Path) -> None:
    state = tmp_path / "state.pickle"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="kept")
        s3.put_bucket_versioning(Bucket="kept", VersioningConfiguration={"Status": "Enabled"})
        version = s3.put_object(Bucket="kept", Key="k", Body=b"v1")["VersionId"]
        s3.put_object(Bucket="kept", Key="k", Body=b"v2")
        save_state(state)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        assert s3.list_buckets()["Buckets"] == []
        assert load_state(state) == 1
        s3.create_bucket(Bucket="kept")  # as seeding does on restart: must not empty it
        body = s3.get_object(Bucket="kept", Key="k", VersionId=version)["Body"].read()
    assert body == b"v1"


def test_stopping_a_process_stops_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time, pathlib;"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(c.pid));"
        "time.sleep(600)"
    )
    process = ManagedProcess(
        "sleeper", [sys.executable, "-c", script], env={}, log_path=tmp_path / "log"
    )
    with process:
        while not pid_file.exists() or not pid_file.read_text():
            pass
        child = int(pid_file.read_text())
        assert process.running()

    assert not process.running()
    # SIGKILL is delivered asynchronously: give the orphan a moment to die (or be a zombie).
    for _ in range(200):
        if _gone_or_zombie(child):
            break
        time.sleep(0.05)
    assert _gone_or_zombie(child)


def _gone_or_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        "broken",
        [sys.executable, "-c", "print('port already taken'); raise SystemExit(3)"],
        env={},
        log_path=tmp_path / "broken.log",
    )
    with (
        process,
        pytest.raises(ServerError, match=r"(?s)broken exited with status 3.*port already taken"),
    ):
        process.wait_healthy("http://127.0.0.1:9/health", timeout_s=600)


def test_demo_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        demo.parse_args(["demo", "--host", "0.0.0.0"])  # noqa: S104 - the refused value
    assert exit_.value.code == 2
    assert "--host: '0.0.0.0' is not a loopback address" in capsys.readouterr().err


@pytest.mark.e2e
def test_lifecycle_on_real_servers_is_idempotent_and_survives_a_restart(
    aws_env: None, plan: dict[str, Any], tmp_path: Path
) -> None:
    work_dir = tmp_path / "work"
    config = LocalConfig(work_dir=work_dir, persist=True)
    raw_key = demo.RAW_KEY

    with LocalPlatform(config, plan) as platform:
        s3 = platform.s3_client()
        assert demo.upload_sample(platform, rows=1_500, corrupt=4, seed=3)
        with applied_env(platform.env()):
            first = lifecycle.run(
                lifecycle.Settings(raw_key=raw_key),
                s3=s3,
                mlflow_client=make_client(platform.tracking_uri),
            )
        # The second run goes through the entrypoint, as a Batch job or a user would.
        completed = subprocess.run(
            [sys.executable, "-m", "training_jobs.lifecycle", "--raw-key", raw_key],
            env=platform.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        lines = [json.loads(line) for line in completed.stdout.splitlines()]  # stdout: only JSON
        second = lines[-1]["result"]

        client = make_client(platform.tracking_uri)
        versions = client.search_model_versions("name = 'churn'")
        champion = client.get_model_version_by_alias("churn", "champion")
        curated = {
            o["Key"] for o in s3.list_objects_v2(Bucket=DATA_BUCKETS["curated_bucket"])["Contents"]
        }
        models = {
            o["Key"] for o in s3.list_objects_v2(Bucket=DATA_BUCKETS["models_bucket"])["Contents"]
        }
        model_location = client.get_logged_model(
            client.get_run(first.run_id).data.tags["mlops.model_id"]
        ).artifact_location
        ports = (platform.moto_port, platform.mlflow_port)

    assert (first.rows_accepted, first.rows_rejected) == (1_500, 4)
    assert (first.decision, first.registered_version, first.version_created) == (
        "promote",
        "1",
        True,
    )
    assert second["dataset_version"] == first.dataset_version
    assert (second["run_id"], second["run_reused"]) == (first.run_id, True)
    assert (second["registered_version"], second["version_created"]) == ("1", False)
    assert [str(v.version) for v in versions] == ["1"]
    assert (str(champion.version), champion.run_id) == ("1", first.run_id)
    assert {
        f"manifests/churn/{first.dataset_version}.json",
        "datasets/churn/train.parquet",
        "datasets/churn/holdout.parquet",
        "rejects/churn/rejects.json",
    } <= curated
    prefix = model_location.removeprefix(f"s3://{DATA_BUCKETS['models_bucket']}/")
    assert {f"{prefix}/MLmodel", f"{prefix}/model.skops"} <= models
    assert f"decisions/churn/{first.run_id}.json" in models
    assert not any(port_in_use(p) for p in ports)

    # The demo runner on the same work dir: fresh processes, the emulated S3 and the
    # registry carry over, so nothing new is trained or registered.
    out = io.StringIO()
    code = demo.main(
        [
            "demo",
            "--plan",
            str(PLAN_PATH),
            "--work-dir",
            str(work_dir),
            "--rows",
            "1500",
            "--corrupt",
            "4",
            "--seed",
            "3",
            "--json",
        ],
        out=out,
    )
    assert code == 0, out.getvalue()
    text = out.getvalue()
    third = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    assert "(5000" not in text and "unchanged" in text  # the raw upload was skipped
    assert third["dataset_version"] == first.dataset_version
    assert (third["run_id"], third["registered_version"], third["version_created"]) == (
        first.run_id,
        "1",
        False,
    )
    assert "rejected row 1501: tenure_months: 'twelve' is not a number" in text
