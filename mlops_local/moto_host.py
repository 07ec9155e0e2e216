"""moto_server for the local platform: the AWS emulator, with the few changes that make it
run what AWS would run. Each change is here, and only here, and says why.

    python -m mlops_local.moto_host --port 4566 --plan plan.json --calls calls.jsonl

1. Step Functions (moto 5.2.5's ASL interpreter) does not normalise service-integration
   parameters (`_normalise_parameters` is a no-op in its LocalStack port), so a
   `batch:submitJob.sync` task with the PascalCase parameters AWS requires fails with
   `States.Runtime` / `'JobName'`, and `aws-sdk:s3:getObject` returns an unread stream.
   The two methods are implemented with botocore's service model, as LocalStack does
   (the upstream fix). The state machine definition is never changed.
2. The interpreter calls services with fixed fake keys; here it calls them as the state
   machine's role, so IAM enforcement checks the pipeline role the plan declares. An
   execution started without a name gets a UUID, as in AWS (moto names it "None").
3. Batch jobs run on this machine's container engine as their job definition says: the
   plan's image (the local build of its sources), command, environment, vCPU and memory
   limits, the secrets the execution role reads, and the job role's credentials — moto
   itself ignores the limits and roles and injects no credentials.
4. IAM enforcement (moto's own policy evaluation, on once the platform is bootstrapped)
   sees the action and resource AWS would authorize (moto names CloudWatch `monitoring:`
   and Batch actions in lower case, HEAD on a bucket `s3:HeadBucket`, and passes `*` as
   the resource of non-S3 calls), accepts the signature of bodiless GETs (moto re-signs
   them over a form body), and every decision is appended to `--calls` for the
   least-privilege report.
5. `POST /mlops-local/credentials {"role_arn", "service"}` gives a service principal (the
   Pod Identity agent for the pods) a session of a role that trusts it — what the cluster
   would give the pod.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final

from training_jobs import contract

ACCOUNT: Final = "123456789012"
PARTITION: Final = "aws"
# The one region the emulator's backends are addressed in: the local stack's
# (Pulumi.local.yaml's aws:region; tests/contract checks the two agree).
REGION: Final = contract.DEFAULT_REGION
SESSION_SECONDS: Final = 3600
CREDENTIALS_PATH: Final = "/mlops-local/credentials"
# Signing names whose IAM action prefix differs (Service Authorization Reference).
IAM_PREFIX: Final = {"monitoring": "cloudwatch"}
# moto's S3 request names that are not IAM actions: HEAD on a bucket is authorized as
# s3:ListBucket (Service Authorization Reference, Amazon S3).
S3_ACTIONS: Final = {"HeadBucket": "ListBucket"}
_lock = threading.Lock()


# --- sessions ---------------------------------------------------------------------------


def assume(role_arn: str, session: str) -> dict[str, str]:
    """A session of `role_arn` from moto's STS (in this process: what the AWS service that
    assumes the role on a workload's behalf would get)."""
    from moto.sts.models import sts_backends

    role = sts_backends[ACCOUNT][PARTITION].assume_role(
        region_name=REGION,
        role_session_name=session[:64],
        role_arn=role_arn,
        policy="",
        duration=SESSION_SECONDS,
        external_id="",
    )
    return {
        "AccessKeyId": role.access_key_id,
        "SecretAccessKey": role.secret_access_key,
        "SessionToken": role.session_token,
    }


def trusted_services(role_arn: str) -> set[str]:
    from moto.iam.models import iam_backends

    role = iam_backends[ACCOUNT][PARTITION].get_role_by_arn(role_arn)
    document = json.loads(role.assume_role_policy_document)
    services: set[str] = set()
    for statement in document.get("Statement", []):
        if statement.get("Effect") == "Allow":
            principal = statement.get("Principal") or {}
            value = principal.get("Service", []) if isinstance(principal, dict) else []
            services |= {value} if isinstance(value, str) else set(value)
    return services


def credentials_app(app: Callable[..., Any]) -> Callable[..., Any]:
    """The moto app, plus the credentials endpoint (5 above)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != CREDENTIALS_PATH:
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        role_arn, service = str(request.get("role_arn")), str(request.get("service"))
        try:
            if service not in trusted_services(role_arn):
                status, body = "403 Forbidden", {"error": f"{role_arn} does not trust {service}"}
            else:
                status, body = "200 OK", assume(role_arn, f"{service}-session")
        except Exception as exc:  # noqa: BLE001 - the caller gets the reason, the server stays up
            status, body = "404 Not Found", {"error": f"{type(exc).__name__}: {exc}"}
        payload = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [payload]

    return wrapped


# --- 1 and 2: Step Functions ------------------------------------------------------------


def patch_step_functions(port: int) -> None:
    import boto3
    import botocore.session
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    service_class = state_task_service.StateTaskService
    session = botocore.session.get_session()
    models: dict[str, Any] = {}

    def operation(self: Any, boto_service_name: str | None, action_name: str | None) -> Any:
        service = self._get_boto_service_name(boto_service_name)
        action = camel_to_snake_case(self._get_boto_service_action(action_name))
        if service not in models:
            models[service] = session.get_service_model(service)
        model = models[service]
        for name in model.operation_names:
            if camel_to_snake_case(name) == action:
                return model.operation_model(name)
        return None

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        op = operation(self, boto_service_name, service_action_name)
        if op is not None and op.input_shape is not None:
            self._to_boto_request(parameters, op.input_shape)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        op = operation(self, boto_service_name, service_action_name)
        if op is not None and op.output_shape is not None:
            self._from_boto_response(response, op.output_shape)

    service_class._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    service_class._normalise_response = normalise_response  # type: ignore[method-assign]

    # An execution started without a name (EventBridge starts them so) gets a UUID in
    # AWS; moto 5.2.5's interpreter backend names it "None" (its ARN ends in ":None").
    import uuid

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    start_execution = StepFunctionsParserBackend.start_execution

    def start_named_execution(
        self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        return start_execution(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_named_execution  # type: ignore[method-assign]

    sessions: dict[str, tuple[float, dict[str, str]]] = {}

    def running_role() -> str:
        from moto.stepfunctions.models import stepfunctions_backends
        from moto.stepfunctions.parser.api import ExecutionStatus

        backend = stepfunctions_backends[ACCOUNT][REGION]
        roles = {e.role_arn for e in backend._get_executions(ExecutionStatus.RUNNING)}  # type: ignore[attr-defined]
        if len(roles) != 1:
            # One pipeline per local stack: its executions share the state machine's role.
            raise RuntimeError(f"cannot tell which state machine role calls: {sorted(roles)}")
        return str(next(iter(roles)))

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role = getattr(state_credentials, "role_arn", None) or running_role()
        with _lock:
            issued, keys = sessions.get(role, (0.0, {}))
            if time.monotonic() - issued > SESSION_SECONDS / 2:
                keys = assume(role, "states-execution")
                sessions[role] = (time.monotonic(), keys)
        return boto3.client(
            service_name=service,
            region_name=region,
            endpoint_url=f"http://localhost:{port}",
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
            config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
        )

    import importlib

    # The modules that imported the interpreter's client factory by name (moto 5.2.5).
    service = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    for name in ("batch", "sns", "aws_sdk", "sqs", "events", "sfn", "ecs", "glue", "dynamodb"):
        module = importlib.import_module(f"{service}state_task_service_{name}")
        if hasattr(module, "boto_client_for"):
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


# --- 3: Batch jobs on the container engine ----------------------------------------------


class JobContainer:
    """What moto's Batch job loop expects of a docker SDK container, on the engine CLI."""

    def __init__(self, engine: Any, name: str) -> None:
        self.engine = engine
        self.name = name
        self.status = "created"
        self.attrs: dict[str, Any] = {"NetworkSettings": {"Networks": {}, "IPAddress": ""}}

    def reload(self) -> None:
        result = self.engine.command(
            "inspect", "--format", "{{.State.Status}}", self.name, check=False
        )
        self.status = result.stdout.strip() or "exited"

    def logs(
        self, stdout: bool = True, stderr: bool = True, timestamps: bool = False, since: Any = None
    ) -> bytes:
        result = self.engine.command("logs", "--timestamps", self.name, check=False)
        text = (result.stdout if stdout else "") + (result.stderr if stderr else "")
        return text.encode()

    def wait(self) -> dict[str, int]:
        result = self.engine.command("wait", self.name, check=False, timeout_s=None)
        code = int(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else 1
        self.engine.command("rm", "--force", self.name, check=False)
        return {"StatusCode": code}

    def kill(self) -> None:
        self.engine.command("kill", self.name, check=False)

    def remove(self) -> None:
        self.engine.command("rm", "--force", self.name, check=False)


class JobRunFailed(Exception):
    """The job could not start as its definition says (secrets, image, roles)."""


class BatchOnEngine:
    """Stands in for moto's docker client, for one Batch job (3 above)."""

    def __init__(self, job: Any, engine: Any, resolve_image: Callable[[str], str], port: int):
        self.job = job
        self.engine = engine
        self.resolve_image = resolve_image
        self.port = port
        self.containers = self

    def run(self, **kwargs: Any) -> JobContainer:
        properties = self.job.job_definition.container_properties or {}
        env = {
            k: str(v)
            for k, v in kwargs["environment"].items()
            if not k.startswith("MOTO_")  # moto's additions: not what AWS gives a job
        }
        endpoint = f"http://127.0.0.1:{self.port}"
        for secret in properties.get("secrets") or []:
            env[secret["name"]] = self._secret(properties, secret["valueFrom"], endpoint)
        self._log_to_plan_group(properties)
        role = properties.get("jobRoleArn")
        if role:
            keys = assume(role, f"batch-{self.job.job_id}")
            env |= {
                "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
                "AWS_SESSION_TOKEN": keys["SessionToken"],
            }
        # In AWS the endpoints are implicit; here every AWS client goes to the emulator.
        env["AWS_ENDPOINT_URL"] = endpoint
        argv = ["run", "--detach", "--name", kwargs["name"], "--network", "host", "--init"]
        argv += ["--label", f"{JOB_LABEL}={self.job.job_id}"]
        for requirement in properties.get("resourceRequirements") or []:
            if requirement["type"] == "MEMORY":
                argv += [
                    "--memory", f"{requirement['value']}m", "--memory-swap",
                    f"{requirement['value']}m",
                ]  # fmt: skip
            elif requirement["type"] == "VCPU":
                argv += ["--cpus", str(requirement["value"])]
        if properties.get("user"):
            argv += ["--user", str(properties["user"])]
        if properties.get("readonlyRootFilesystem"):
            argv.append("--read-only")
        for key, value in sorted(env.items()):
            argv += ["--env", f"{key}={value}"]
        command = [str(c) for c in kwargs["command"]]
        argv += ["--entrypoint", command[0], self.resolve_image(kwargs["image"]), *command[1:]]
        self.engine.command("rm", "--force", kwargs["name"], check=False)
        self.engine.command(*argv, timeout_s=120)
        container = JobContainer(self.engine, kwargs["name"])
        container.reload()
        return container

    def _log_to_plan_group(self, properties: Mapping[str, Any]) -> None:
        """The awslogs driver writes to the job definition's log group, which must exist
        (the plan pre-creates it; AWS does not create it for a job): moto writes to
        /aws/batch/job whatever the definition says."""
        log = properties.get("logConfiguration") or {}
        options = log.get("options") or {}
        group = options.get("awslogs-group")
        if log.get("logDriver") != "awslogs" or not group:
            return
        if group not in self.job._log_backend.groups:
            raise JobRunFailed(f"CannotStartContainerError: log group {group} does not exist")
        self.job._log_group = group
        prefix = options.get("awslogs-stream-prefix", "default")
        self.job._stream_name = f"{prefix}/default/{self.job.job_id}"

    def _secret(self, properties: Mapping[str, Any], arn: str, endpoint: str) -> str:
        """What the ECS agent does at start: read the secret as the execution role."""
        import boto3

        keys = assume(properties["executionRoleArn"], f"ecs-agent-{self.job.job_id}")
        client = boto3.client(
            "secretsmanager",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
        )
        try:
            return str(client.get_secret_value(SecretId=arn)["SecretString"])
        except Exception as exc:
            raise JobRunFailed(
                f"ResourceInitializationError: cannot read secret {arn}: {exc}"
            ) from exc


def patch_batch(plan_path: Path, port: int) -> None:
    from moto.batch.models import Job

    from mlops_local.engine import detect
    from mlops_local.images import local_image_resolver

    engine = detect()
    resolve = local_image_resolver(engine, json.loads(plan_path.read_text()))

    def docker_client(job: Any) -> BatchOnEngine:
        return BatchOnEngine(job, engine, resolve, port)

    Job.docker_client = property(docker_client)  # type: ignore[assignment]


# --- 4: IAM requests as AWS authorizes them ----------------------------------------------


def _canonical_operations() -> Callable[[str, str], str]:
    import botocore.session

    session = botocore.session.get_session()
    cache: dict[str, dict[str, str]] = {}

    def canonical(service: str, operation: str) -> str:
        if service not in cache:
            try:
                model = session.get_service_model(IAM_PREFIX.get(service, service))
                cache[service] = {name.lower(): name for name in model.operation_names}
            except Exception:  # noqa: BLE001 - not a botocore service: keep moto's name
                cache[service] = {}
        return cache[service].get(operation.lower(), operation)

    return canonical


def request_resources(action: str, data: Mapping[str, Any], body: bytes) -> list[str]:
    """The resources AWS authorizes a call on, where moto passes `*` (non-S3 services)."""
    try:
        payload = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = {}
    if not isinstance(payload, dict):
        payload = {}

    def field(*names: str) -> str | None:
        for name in names:
            value = payload.get(name, data.get(name))
            if isinstance(value, list):
                value = value[0] if value else None
            if value:
                return str(value)
        return None

    if action == "batch:SubmitJob":
        return [r for r in (field("jobDefinition"), field("jobQueue")) if r]
    if action == "states:StartExecution":
        return [r for r in (field("stateMachineArn"),) if r]
    if action == "sns:Publish":
        return [r for r in (field("TopicArn", "TargetArn"),) if r]
    if action == "secretsmanager:GetSecretValue":
        secret = field("SecretId")
        if secret and not secret.startswith("arn:"):
            from moto.secretsmanager.models import secretsmanager_backends

            secret = secretsmanager_backends[ACCOUNT][REGION].describe_secret(secret).arn
        return [secret] if secret else []
    return []


def _request_fields(data: Mapping[str, Any], body: bytes) -> Mapping[str, Any]:
    """The request's parameters: form or query fields, or a JSON or CBOR body (CloudWatch
    clients speak Smithy RPC v2 CBOR; botocore's own decoder reads it)."""
    if data.get("Namespace") or not body:
        return data
    try:
        return dict(json.loads(body))
    except (ValueError, TypeError):
        pass
    from botocore.parsers import RpcV2CBORParser

    parser = RpcV2CBORParser()
    try:
        decoded = parser.parse_data_item(parser.get_peekable_stream_from_bytes(body))
    except Exception:  # noqa: BLE001 - not CBOR either: no condition keys to read
        return data
    return decoded if isinstance(decoded, dict) else data


def request_context(action: str, data: Mapping[str, Any], body: bytes = b"") -> dict[str, str]:
    """Condition keys the request sets that the plan's policies test (moto evaluates no
    condition; the least-privilege report does, from these)."""
    if action == "cloudwatch:PutMetricData":
        namespace = _request_fields(data, body).get("Namespace")
        if isinstance(namespace, list):
            namespace = namespace[0] if namespace else None
        return {"cloudwatch:namespace": str(namespace)} if namespace else {}
    return {}


def _job_definition_arns(resource: str) -> list[str]:
    """A job definition named by name or ARN: AWS authorizes `job-definition/<name>:<rev>`."""
    if resource.startswith("arn:") or "/" in resource:
        return [resource]
    from moto.batch.models import batch_backends

    definition = batch_backends[ACCOUNT][REGION].get_job_definition(resource)
    return [definition.arn] if definition else [resource]


def patch_iam(calls_path: Path) -> None:
    from moto.iam.access_control import IAMRequestBase

    canonical = _canonical_operations()
    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        service, _, operation = self._action.partition(":")
        if service == "s3":
            operation = S3_ACTIONS.get(operation, operation)
        action = f"{IAM_PREFIX.get(service, service)}:{canonical(service, operation)}"
        self._action = action
        resources = request_resources(action, self._data, self._body) or [resource]
        if action == "batch:SubmitJob":
            resources = [a for r in resources for a in _job_definition_arns(r)]
        principal = getattr(self._access_key, "arn", "?")
        context = request_context(action, self._data, self._body or b"")
        for target in resources:
            try:
                original(self, target)
            except Exception:
                _log(calls_path, principal, action, target, context, allowed=False)
                raise
            _log(calls_path, principal, action, target, context, allowed=True)

    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]

    # A request without a body (the REST APIs' GETs, e.g. scheduler:GetSchedule) was signed
    # over an empty payload; moto re-signs it over its parsed parameters, form-encoded, and
    # rejects every such call with SignatureDoesNotMatch.
    create_request = IAMRequestBase._create_aws_request

    def create_aws_request(self: Any) -> Any:
        if self._method in ("GET", "HEAD", "DELETE") and not self._body:
            data, self._data = self._data, {}
            try:
                return create_request(self)
            finally:
                self._data = data
        return create_request(self)

    IAMRequestBase._create_aws_request = create_aws_request  # type: ignore[method-assign]


def _log(
    path: Path,
    principal: str,
    action: str,
    resource: str,
    context: Mapping[str, str],
    *,
    allowed: bool,
) -> None:
    line = json.dumps(
        {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "principal": principal,
            "action": action,
            "resource": resource,
            "context": dict(context),
            "allowed": allowed,
        }
    )
    with _lock, path.open("a") as sink:
        sink.write(line + "\n")


def read_calls(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- the server -------------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_local.moto_host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plan", type=Path, required=True, help="the plan the jobs run from")
    parser.add_argument("--calls", type=Path, required=True, help="IAM decisions, JSON lines")
    args = parser.parse_args(list(argv) if argv is not None else None)
    # The interpreter's service calls and the jobs reach this server on this port.
    os.environ["MOTO_PORT"] = str(args.port)
    os.environ.setdefault("MOTO_DOCKER_NETWORK_MODE", "host")
    # The plan attaches AWS managed policies (the Batch instance role's): moto knows them
    # only when asked to load them.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"

    # moto reports a Batch job it could not run only through its logger.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    patch_step_functions(args.port)
    patch_batch(args.plan, args.port)
    patch_iam(args.calls)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app = DomainDispatcherApplication(create_backend_app)
    try:
        run_simple(
            args.host,
            args.port,
            credentials_app(app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
    finally:
        _cleanup_job_containers()
    return 0


def _cleanup_job_containers() -> None:
    """Batch jobs still running when the emulator stops go with it."""
    from mlops_local.engine import EngineUnavailable, detect

    try:
        engine = detect()
    except EngineUnavailable:
        return
    listed = engine.command(
        "ps", "--all", "--filter", f"label={JOB_LABEL}", "--format", "{{.Names}}", check=False
    ).stdout
    names = listed.split()
    if names:
        subprocess.run(  # noqa: S603 - our own engine binary, names from its own listing
            [engine.binary, "rm", "--force", *names], capture_output=True, check=False
        )


# Every Batch job container carries it (its job id): found, and removed, by it.
JOB_LABEL: Final = "mlops-local.batch-job"


if __name__ == "__main__":
    sys.exit(main())
