"""The workload images, built from this checkout and run as the plans declare them.

Nothing about the containers is restated here: commands, args, env, limits, user, volumes
and probes come from the recorded plans of the shipped stacks; the tests supply only what
the plan cannot show (Secret values) and what the platform gives a pod implicitly.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra.components.tracking import MLFLOW_ADMIN_USER, MLFLOW_NAME
from infra.planning import k8s as manifests
from infra.planning.images import IMAGES
from infra.planning.pipeline import BATCH_JOBS
from mlops.plan import Plan
from mlops_local.engine import Engine
from tests.conftest import plan_for
from tests.images.conftest import PodFactory, Postgres, objects
from training_jobs import contract

pytestmark = pytest.mark.container

MLFLOW = f"{MLFLOW_NAME}/{MLFLOW_NAME}"  # namespace/name of the tracking Deployment
SERVER = "mlops-serving/model-server"


def test_every_image_is_built_from_this_checkout(engine: Engine, built: dict[str, str]) -> None:
    for kind, ref in built.items():
        labels = engine.image_labels(ref)
        assert labels[contract.IMAGE_LABEL_CONTEXT_DIGEST], ref
        assert labels["org.opencontainers.image.title"] == f"mlops-{kind}"
        assert labels["org.opencontainers.image.revision"], ref
        config = engine.inspect_image(ref)["Config"]
        assert isinstance(config, dict)
        # The image's own user is the pods' securityContext user: a Batch job (which has no
        # securityContext) runs as the same non-root user as the pods do.
        assert config["User"] == f"{manifests.RUN_AS_USER}:{manifests.RUN_AS_USER}", ref


def _run(engine: Engine, image: str, *command: str) -> tuple[int, str]:
    result = engine.command(
        "run", "--rm", "--network", "host", "--read-only", image, *command, check=False
    )
    return result.returncode, result.stdout + result.stderr


def test_jobs_image_runs_the_command_of_every_job_definition(
    engine: Engine, built: dict[str, str]
) -> None:
    plan = plan_for("dev")
    definitions = plan.of_type("aws:batch/jobDefinition:JobDefinition")
    assert len(definitions) == len(BATCH_JOBS)
    for definition in definitions:
        command = json.loads(definition.inputs["containerProperties"])["command"]
        status, output = _run(engine, built["jobs"], *command, "--help")
        assert status == 0, f"{definition.name}: {command} --help exited {status}:\n{output}"
        assert "usage:" in output, definition.name


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_no_workload_image_contains_pulumi_or_the_emulator(
    engine: Engine, built: dict[str, str], kind: str
) -> None:
    for module in ("pulumi", "pulumi_aws", "moto"):
        status, output = _run(engine, built[kind], "python", "-c", f"import {module}")
        assert status != 0 and "ModuleNotFoundError" in output, f"{kind} image has {module}"


def _mlflow_secrets(plan: Plan, backend_uri: str | None) -> dict[str, dict[str, str]]:
    """The values of the MLflow server's Secret (the plan shows `[secret]`), made the way
    the program makes them, with the test's own database where the plan uses RDS."""
    deployment = objects(plan, "Deployment")[MLFLOW]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    sqlite = next(
        (e["value"] for e in env if e["name"] == "MLFLOW_BACKEND_STORE_URI" and "value" in e), None
    )
    database = backend_uri or sqlite
    assert database, "the plan gives MLflow no database"
    values = {
        manifests.MLFLOW_SECRET_ADMIN_PASSWORD: secrets.token_urlsafe(24),
        manifests.MLFLOW_SECRET_FLASK_KEY: secrets.token_urlsafe(32),
        manifests.MLFLOW_AUTH_FILE: manifests.mlflow_auth_config(
            database_uri=database, admin_username=MLFLOW_ADMIN_USER
        ),
    }
    if backend_uri is not None:
        values[manifests.MLFLOW_SECRET_BACKEND_URI] = backend_uri
    return {f"{MLFLOW_NAME}-server": values}


def _call(
    port: int, method: str, path: str, *, host: str, auth: tuple[str, str] | None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host, "Content-Type": "application/json"}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except json.JSONDecodeError:
        return response.status, {"text": text}


@pytest.fixture(params=["dev", "prod"])
def mlflow_pod(
    request: pytest.FixtureRequest, pods: PodFactory, postgres: Postgres
) -> Iterator[tuple[Plan, Any, str]]:
    plan = plan_for(request.param)
    container = objects(plan, "Deployment")[MLFLOW]["spec"]["template"]["spec"]["containers"][0]
    uses_rds = any(
        e["name"] == "MLFLOW_BACKEND_STORE_URI" and "valueFrom" in e for e in container["env"]
    )
    values = _mlflow_secrets(plan, postgres.uri() if uses_rds else None)
    pod = pods.start(plan, MLFLOW, secrets=values)
    pod.wait_ready()
    yield plan, pod, values[f"{MLFLOW_NAME}-server"][manifests.MLFLOW_SECRET_ADMIN_PASSWORD]


def test_tracking_image_serves_the_plans_clients_within_the_plans_limits(
    mlflow_pod: tuple[Plan, Any, str],
) -> None:
    plan, pod, password = mlflow_pod
    (port,) = pod.run.ports
    admin = (MLFLOW_ADMIN_USER, password)
    cluster_host = f"{MLFLOW_NAME}.{MLFLOW_NAME}.svc.cluster.local:{port}"
    # The host name Batch jobs use: the internal load balancer's, from the plan's output.
    nlb_host = urlsplit(plan.outputs[contract.OUTPUT_TRACKING_URI]).netloc
    assert nlb_host.endswith(f".elb.{plan.outputs['region']}.amazonaws.com:{port}")

    for host in (cluster_host, nlb_host):
        status, body = _call(
            port, "POST", "/api/2.0/mlflow/experiments/create", host=host, auth=admin,
            body={"name": f"images-test-{host.split('.')[0]}"},
        )  # fmt: skip
        assert status == 200, f"Host {host}: {status} {body}"
        assert body["experiment_id"]
    # The platform's protections are on: no credentials, no write; a foreign host, refused.
    status, _ = _call(
        port, "POST", "/api/2.0/mlflow/experiments/create", host=cluster_host, auth=None,
        body={"name": "anonymous"},
    )  # fmt: skip
    assert status == 401
    status, _ = _call(port, "GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                      host="attacker.example:5000", auth=admin)  # fmt: skip
    assert status == 403

    state = pod.state()
    assert state["Running"] and not state.get("OOMKilled"), state
    peak = pod.memory_peak_bytes()
    limit = pod.run.memory_limit_bytes
    assert peak is not None and limit is not None
    assert peak < limit, f"MLflow peaked at {peak / 2**20:.0f} MiB of {limit / 2**20:.0f} MiB"
    assert pod.exec("id", "-u").strip() == str(pod.run.run_as_user)
