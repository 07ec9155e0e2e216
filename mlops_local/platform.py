"""The local platform: the `local` stack's plan, running on this machine.

    emulator   moto_server (mlops_local.moto_host) with the plan's AWS resources applied,
               IAM enforced, the state machine interpreted, Batch jobs on the engine
    workloads  the plan's Deployments (MLflow, the model server) on the container engine,
               from the images built from this checkout (mlops_local.pods)

Nothing about a workload is restated here: images, commands, env, limits, probes, roles
and secrets all come from the plan. What the platform adds is what a cluster or an AWS
account adds implicitly — a pod's role credentials, the emulator's endpoint, the cluster's
DNS names — each in one named place below.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from mlops_local import contracts
from mlops_local.apply import Applied, apply
from mlops_local.engine import Engine
from mlops_local.images import local_image_resolver
from mlops_local.moto_host import CREDENTIALS_PATH
from mlops_local.plan import LocalPlan
from mlops_local.pods import PodFailed, RunningPod, translate
from mlops_local.processes import LOOPBACK, ManagedProcess, ServerError, port_in_use

DEFAULT_EMULATOR_PORT: Final = 4566  # the endpoints Pulumi.local.yaml names
ADMIN_USER: Final = "mlops-local-admin"
# The service principal that hands a pod its role (EKS Pod Identity).
POD_PRINCIPAL: Final = "pods.eks.amazonaws.com"
BOOTSTRAP_KEYS: Final = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}


class PlatformError(Exception):
    """The local platform cannot start as the plan says; the message names what and why."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def as_env(self) -> dict[str, str]:
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def as_boto(self) -> dict[str, str | None]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


@dataclass(frozen=True)
class PlatformSettings:
    work_dir: Path
    emulator_port: int = DEFAULT_EMULATOR_PORT
    startup_timeout_s: float = 180.0


@dataclass
class Pod:
    """A running Deployment and where its Service's port is on this host."""

    key: str  # <namespace>/<name>
    running: RunningPod
    ports: dict[int, int] = field(default_factory=dict)  # Service port → host port

    def url(self, service_port: int | None = None) -> str:
        port = (
            self.ports.get(service_port, service_port)
            if service_port
            else self.running.run.ports[0]
        )
        return f"http://{LOOPBACK}:{port}"


class LocalPlatform:
    """Start with `with LocalPlatform(...) as platform:`; everything stops on exit."""

    def __init__(
        self,
        plan: LocalPlan,
        engine: Engine,
        settings: PlatformSettings,
        *,
        on_step: Callable[[str, str], None] = lambda step, detail: None,
    ) -> None:
        self.plan = plan
        self.engine = engine
        self.settings = settings
        self.on_step = on_step
        self.work_dir = settings.work_dir
        self.logs_dir = self.work_dir / "logs"
        self.calls_path = self.work_dir / "iam-calls.jsonl"
        self.outputs_path = self.work_dir / "outputs.json"
        self.endpoint = f"http://{LOOPBACK}:{settings.emulator_port}"
        self.applied = Applied()
        self.admin: Credentials | None = None
        self.outputs: dict[str, Any] = {}
        self.pods: dict[str, Pod] = {}
        self._emulator: ManagedProcess | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> LocalPlatform:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Every run starts fresh: the emulator keeps nothing, so neither does MLflow's
        # volume (a registry pointing at artifacts that are gone would mislead).
        self.cleanup_volumes()
        self.calls_path.unlink(missing_ok=True)
        self.plan.generate_passwords(self.work_dir / "passwords.json")
        # Which local image runs each plan image is settled first: a stale build fails
        # here, in one line, not in the middle of the pipeline.
        resolve = local_image_resolver(self.engine, self.plan.plan.to_dict())
        for resource in self.plan.deployments().values():
            for container in resource.inputs["spec"]["template"]["spec"]["containers"]:
                resolve(str(container["image"]))
        self._start_emulator()
        self.applied = apply(self.plan, lambda service: self.client(service, BOOTSTRAP_KEYS))
        self.on_step(
            "applied",
            f"{len(self.applied.created)} AWS resources of the plan created in the emulator, "
            f"{len(self.applied.skipped)} left out (network plumbing, billing; see the summary)",
        )
        self.admin = self._bootstrap_admin()
        self.outputs = self.applied.resolve(self.plan.outputs)
        self.outputs_path.write_text(json.dumps(self.outputs, indent=2, sort_keys=True))
        contracts.check(self)
        self.on_step(
            "contracts",
            "policy rules pass; the job security groups and the tracking "
            "Service admit every connection the workloads make",
        )
        self._start_pods(resolve)

    def stop(self) -> None:
        for pod in reversed(list(self.pods.values())):
            with contextlib.suppress(Exception):  # stopping the rest matters more than one
                pod.running.stop()
                self._save_log(pod)
                pod.running.remove()
        self.pods.clear()
        if self._emulator is not None:
            self._emulator.stop(grace_s=20)
            self._emulator = None

    def _save_log(self, pod: Pod) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = pod.running.logs(lines=100_000)
        (self.logs_dir / f"{pod.running.run.name}.log").write_text(log + "\n")

    # --- the emulator --------------------------------------------------------------------

    def _start_emulator(self) -> None:
        port = self.settings.emulator_port
        if port_in_use(port):
            raise PlatformError(
                f"port {port} is taken on this host (another moto_server or LocalStack?); "
                "stop it or pass --emulator-port"
            )
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "MOTO_", "INITIAL_NO_AUTH"))
        }
        self._emulator = ManagedProcess(
            "moto_server",
            [
                sys.executable,
                "-m",
                "mlops_local.moto_host",
                "--port",
                str(port),
                "--plan",
                str(self.plan.path.resolve()),
                "--calls",
                str(self.calls_path),
            ],
            env=env,
            log_path=self.logs_dir / "moto_server.log",
        ).start()
        self._emulator.wait_healthy(
            f"{self.endpoint}/moto-api/data.json", self.settings.startup_timeout_s
        )
        self._moto_api("config", {"stepfunctions": {"execute_state_machine": True}})

    def _moto_api(self, path: str, body: Any) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        # Not form-encoded (urllib's default), or the server reads the body as a form.
        request = urllib.request.Request(  # noqa: S310 - our loopback endpoint
            f"{self.endpoint}/moto-api/{path}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"null")

    def _bootstrap_admin(self) -> Credentials:
        """The operator's identity (what runs `pulumi up` and starts the first pipeline),
        then IAM enforcement on: from here every call is checked against its caller's
        policies, as in AWS."""
        iam = self.client("iam", BOOTSTRAP_KEYS)
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="administrator",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self._moto_api("reset-auth", b"0")
        self._clients.clear()
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def role_credentials(self, role_arn: str, service: str) -> Credentials:
        """A session of `role_arn` as the AWS service `service` would get it; the role
        must trust that service (its trust policy, from the plan)."""
        request = urllib.request.Request(  # noqa: S310 - our loopback endpoint
            f"{self.endpoint}{CREDENTIALS_PATH}",
            data=json.dumps({"role_arn": role_arn, "service": service}).encode(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                keys = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            reason = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise PlatformError(f"{service} cannot act as {role_arn}: {reason}") from exc
        return Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"])

    def client(
        self, service: str, credentials: Credentials | Mapping[str, str] | None = None
    ) -> Any:
        """A boto3 client on the emulator; as the operator unless `credentials` are given."""
        import boto3
        from botocore.config import Config

        creds = credentials or self.admin
        if creds is None:
            raise PlatformError("the platform is not started")
        keys = dict(creds.as_boto()) if isinstance(creds, Credentials) else dict(creds)
        cache_key = (service, str(keys.get("aws_access_key_id")))
        if cache_key not in self._clients:
            self._clients[cache_key] = boto3.client(
                service,
                region_name=self.plan.region,
                endpoint_url=self.endpoint,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                **keys,
            )
        return self._clients[cache_key]

    def env(self, credentials: Credentials | None = None) -> dict[str, str]:
        """What an AWS SDK needs to reach the emulator as `credentials` (the operator)."""
        creds = credentials or self.admin
        assert creds is not None
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.plan.region} | creds.as_env()

    # --- the workloads -------------------------------------------------------------------

    def _start_pods(self, resolve: Callable[[str], str]) -> None:
        """Every Deployment of the plan, started together, then each waited for as the
        kubelet would (its startup and readiness probes, within their budgets)."""
        hosts = self.plan.cluster_hosts()
        started: list[Pod] = []
        for key, resource in sorted(self.plan.deployments().items()):
            namespace = key.split("/")[0]
            manifest = self.applied.resolve(resource.inputs)
            pod_spec = manifest["spec"]["template"]["spec"]
            run = translate(
                manifest,
                image_for=resolve,
                secrets=self.plan.secret_data(namespace),
                volumes_dir=self.work_dir / "volumes",
                hosts=hosts,
                implicit_env=self._pod_environment(namespace, pod_spec.get("serviceAccountName")),
            )
            pod = Pod(
                key=key, running=RunningPod(self.engine, run), ports=self._service_ports(key, run)
            )
            self.pods[key] = pod
            pod.running.start()
            started.append(pod)
        for pod in started:
            resource = self.plan.deployments()[pod.key]
            try:
                seconds = pod.running.wait_ready()  # within the plan's own probe budgets
            except PodFailed as exc:
                raise PodFailed(
                    f"Deployment {pod.key} (plan resource {resource.name}): {exc}"
                ) from exc
            memory = pod.running.run.memory_limit_bytes
            self.on_step(
                "pod ready",
                f"{pod.key} ({pod.running.run.container}) on "
                f":{','.join(map(str, pod.running.run.ports))} "
                f"as uid {pod.running.run.run_as_user}, read-only root, "
                f"{(memory or 0) / 2**20:.0f} MiB limit — ready in {seconds:.1f}s",
            )

    def _pod_environment(self, namespace: str, service_account: str | None) -> dict[str, str]:
        """What the cluster gives a pod without the pod spec saying so: its service
        account's role credentials (Pod Identity) and, here, the emulator as AWS."""
        env = {"AWS_ENDPOINT_URL": self.endpoint}
        if not service_account:
            return env
        account = self.plan.service_account(namespace, service_account)
        if account is None:
            raise PlatformError(
                f"{namespace}/{service_account}: the pod runs as a service account the plan does "
                "not declare"
            )
        role = (account.get("annotations") or {}).get("eks.amazonaws.com/role-arn")
        if role:
            env |= self.role_credentials(self.applied.real(str(role)), POD_PRINCIPAL).as_env()
        return env

    def _service_ports(self, key: str, run: Any) -> dict[int, int]:
        """Service port → the pod's port: on the host network the pod's own port answers."""
        service = self.plan.services().get(key) or {}
        named = {}
        for port in run.ports:
            named[str(port)] = port
        deployment = self.plan.deployments()[key].inputs
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for declared in container.get("ports") or []:
                named[str(declared.get("name", declared["containerPort"]))] = int(
                    declared["containerPort"]
                )
        mapping = {}
        for port in (service.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port["port"])
            mapping[int(port["port"])] = named.get(str(target), int(port["port"]))
        return mapping

    def pod(self, key: str) -> Pod:
        if key not in self.pods:
            raise PlatformError(f"the plan runs no Deployment {key} (it has {sorted(self.pods)})")
        return self.pods[key]

    def cleanup_volumes(self) -> None:
        shutil.rmtree(self.work_dir / "volumes", ignore_errors=True)


def wait_for(
    check: Callable[[], Any], *, timeout_s: float, interval_s: float = 1.0, what: str
) -> Any:
    """`check()` until it returns something truthy; PlatformError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise PlatformError(f"{what}: not done within {timeout_s:g}s")
        time.sleep(interval_s)


__all__ = ["Credentials", "LocalPlatform", "PlatformError", "PlatformSettings", "ServerError"]
