"""The embedded local platform: moto_server + an MLflow server on loopback, seeded from a plan.

    with LocalPlatform(LocalConfig(work_dir=path), plan) as platform:
        env = platform.env()   # what a job process needs to find the emulated platform

Processes run in their own process groups and are stopped on exit — normal, exception or
Ctrl-C — MLflow first, then moto (which, with `persist=True`, writes the emulated S3 to
the work dir so the next start resumes where this one stopped).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import boto3

from training_jobs import contract
from training_jobs.local.processes import LOOPBACK, ManagedProcess, free_port, port_in_use
from training_jobs.local.seed import (
    MonitoringSeed,
    SeedResult,
    buckets_in,
    seed,
    seed_monitoring,
    stack_outputs,
    write_outputs,
)

# Dummy credentials: the emulator accepts any, and real ones must never reach it.
EMULATOR_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
# Variables that would point clients elsewhere or at real accounts.
SCRUBBED_ENV: Final = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class PortBusy(Exception):
    """A configured port is taken."""


@dataclass(frozen=True)
class LocalConfig:
    work_dir: Path
    host: str = LOOPBACK
    moto_port: int | None = None  # None: a free port
    mlflow_port: int | None = None
    persist: bool = False  # keep the emulated S3 in work_dir across restarts
    startup_timeout_s: float = 180.0
    region: str = "us-east-1"
    extra_env: Mapping[str, str] = field(default_factory=dict)


class LocalPlatform:
    def __init__(self, config: LocalConfig, plan: Mapping[str, Any]) -> None:
        self.config = config
        self.plan = plan
        self.work_dir = config.work_dir.resolve()
        self.moto_port = self._port(config.moto_port, "--moto-port")
        self.mlflow_port = self._port(config.mlflow_port, "--mlflow-port")
        self.outputs_path = self.work_dir / "stack-outputs.json"
        self.logs_dir = self.work_dir / "logs"
        self.seeded: SeedResult | None = None
        self.monitoring: MonitoringSeed | None = None
        self._stack = ExitStack()

    def _port(self, port: int | None, flag: str) -> int:
        if port is None:
            return free_port(self.config.host)
        if port_in_use(port, self.config.host):
            raise PortBusy(f"{flag}: port {port} on {self.config.host} is already in use")
        return port

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.config.host}:{self.moto_port}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.config.host}:{self.mlflow_port}"

    @property
    def outputs(self) -> dict[str, Any]:
        if self.seeded is None:
            raise RuntimeError("the local platform is not started")
        return self.seeded.outputs

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, MLflow and the jobs at this platform."""
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(EMULATOR_CREDENTIALS)
        env.update(
            {
                "AWS_DEFAULT_REGION": self.config.region,
                "AWS_REGION": self.config.region,
                "AWS_ENDPOINT_URL": self.s3_endpoint,
                "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
                "MLFLOW_TRACKING_URI": self.tracking_uri,
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLOPS_STACK_OUTPUTS": str(self.outputs_path),
                "MLOPS_TRACKING_URI": self.tracking_uri,
                "NO_PROXY": f"{self.config.host},localhost",
                "no_proxy": f"{self.config.host},localhost",
            }
        )
        env.update(self.config.extra_env)
        return env

    def s3_client(self) -> Any:
        return self.client("s3")

    def client(self, service: str) -> Any:
        """A boto3 client for `service` of the emulator (s3, cloudwatch, sns, events, ...)."""
        return boto3.client(
            service,
            endpoint_url=self.s3_endpoint,
            region_name=self.config.region,
            aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def start(self) -> LocalPlatform:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The plan is checked before anything starts; a bad plan starts nothing.
        models_bucket = str(
            stack_outputs(self.plan, buckets_in(self.plan))[
                contract.OUTPUT_BUCKETS[contract.BUCKET_MODELS]
            ]
        )
        try:
            # Both servers start at once: MLflow needs only the bucket's name, not the
            # emulator, and each spends most of its start-up importing.
            moto = self._start_moto()
            mlflow = self._start_mlflow(models_bucket)
            moto.wait_healthy(f"{self.s3_endpoint}/moto-api/", self.config.startup_timeout_s)
            self.seeded = seed(self.plan, self.s3_client(), self.config.region)
            self.monitoring = seed_monitoring(
                self.plan,
                cloudwatch=self.client("cloudwatch"),
                sns=self.client("sns"),
                events=self.client("events"),
            )
            outputs = dict(self.seeded.outputs)
            outputs[contract.OUTPUT_TRACKING_URI] = self.tracking_uri
            self.seeded = self.seeded.model_copy(update={"outputs": outputs})
            write_outputs(outputs, self.outputs_path)
            mlflow.wait_healthy(f"{self.tracking_uri}/health", self.config.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_moto(self) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "training_jobs.local.moto_host",
            "--host",
            self.config.host,
            "--port",
            str(self.moto_port),
        ]
        if self.config.persist:
            argv += ["--state", str(self.work_dir / "moto-state.pickle")]
        moto = ManagedProcess(
            "moto_server", argv, env=self.env(), log_path=self.logs_dir / "moto.log"
        )
        self._stack.callback(moto.stop)
        return moto.start()

    def _start_mlflow(self, models_bucket: str) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.work_dir / 'mlflow.db'}",
            # Clients write artifacts straight to the (emulated) models bucket, as the jobs
            # do on AWS; the server only records where they are.
            "--default-artifact-root",
            f"s3://{models_bucket}/{contract.PREFIX_MLFLOW_ARTIFACTS}",
            "--no-serve-artifacts",
            "--host",
            self.config.host,
            "--port",
            str(self.mlflow_port),
            "--workers",
            "1",
        ]
        mlflow = ManagedProcess(
            "mlflow server",
            argv,
            env=self.env(),
            log_path=self.logs_dir / "mlflow.log",
            cwd=self.work_dir,
        )
        self._stack.callback(mlflow.stop)
        return mlflow.start()

    def stop(self) -> None:
        """Stop everything started, newest first (MLflow, then moto)."""
        self._stack.close()

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def applied_env(env: Mapping[str, str]) -> Iterator[None]:
    """Use `env` as this process's environment for a block (for in-process job runs)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
