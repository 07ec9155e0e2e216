"""Containers for real: the engine, the images built from this checkout, a PostgreSQL
server and the plan's pods run as the plan declares them (mlops_local.pods)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.planning.images import IMAGES
from mlops.images import SYSTEM_CA_BUNDLE, build_image, resolve_base_image
from mlops.plan import Plan
from mlops_local.engine import Engine, detect
from mlops_local.images import local_image_resolver
from mlops_local.pods import RunningPod, translate
from tests.conftest import ROOT

pytestmark = pytest.mark.container


@pytest.fixture(scope="session")
def engine() -> Engine:
    # No engine is an error, not a skip: these tests are how the images are proved.
    return detect().check_ready()


@pytest.fixture(scope="session")
def built(engine: Engine) -> dict[str, str]:
    """kind → local ref of each image, built from this checkout (a no-op when current)."""
    base = resolve_base_image(engine, ROOT, os.environ.get("MLOPS_BASE_IMAGE"), print)
    return {
        kind: build_image(engine, ROOT, spec, base_image=base, ca_bundle=SYSTEM_CA_BUNDLE).ref
        for kind, spec in IMAGES.items()
    }


def objects(plan: Plan, kind: str) -> dict[str, dict[str, Any]]:
    """`<namespace>/<name>` → the plan's Kubernetes objects of `kind`, as recorded."""
    found = {}
    for resource in plan.resources:
        if resource.type.startswith("kubernetes:") and resource.inputs.get("kind") == kind:
            meta = resource.inputs["metadata"]
            found[f"{meta.get('namespace')}/{meta['name']}"] = resource.inputs
    return found


def cluster_hosts(plan: Plan) -> dict[str, str]:
    """Every name the plan's Services answer to in the cluster → loopback (host network)."""
    hosts = {}
    for key in objects(plan, "Service"):
        namespace, name = key.split("/")
        for host in (f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}.svc"):
            hosts[host] = "127.0.0.1"
    return hosts


@dataclass
class PodFactory:
    engine: Engine
    work_dir: Path
    started: list[RunningPod]

    def start(
        self,
        plan: Plan,
        deployment: str,
        *,
        secrets: Mapping[str, Mapping[str, str]],
        implicit_env: Mapping[str, str] | None = None,
    ) -> RunningPod:
        run = translate(
            objects(plan, "Deployment")[deployment],
            image_for=local_image_resolver(self.engine, plan.to_dict()),
            secrets=secrets,
            volumes_dir=self.work_dir,
            hosts=cluster_hosts(plan),
            implicit_env=implicit_env or {},
        )
        pod = RunningPod(self.engine, run)
        self.started.append(pod)
        return pod.start()


@pytest.fixture
def pods(engine: Engine, built: dict[str, str], tmp_path: Path) -> Iterator[PodFactory]:
    factory = PodFactory(engine, tmp_path / "volumes", [])
    try:
        yield factory
    finally:
        for pod in reversed(factory.started):
            pod.remove()


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str
    database: str

    def uri(self) -> str:
        # As RDS requires (rds.force_ssl): TLS only.
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"
            "?sslmode=require"
        )


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv[:5])} failed: {result.stderr or result.stdout}")


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        pytest.fail("PostgreSQL is not installed (Debian package postgresql; `make engine`)")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL on loopback with TLS and password auth, as RDS is reached."""
    from mlops_local.processes import PortTaken, on_free_port

    bindir = _postgres_bin()
    # Outside pytest's (root-only) temp tree: the server runs as the postgres user.
    data = Path(tempfile.mkdtemp(prefix="mlops-pg-")) / "data"
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data.parent.chmod(0o777)
    password = secrets.token_urlsafe(24)
    pwfile = data.parent / "pw"
    pwfile.write_text(password)
    pwfile.chmod(0o644)
    _run(
        [*runner, str(bindir / "initdb"), "-D", str(data), "-U", "mlflow", "--pwfile", str(pwfile),
         "--auth-host=scram-sha-256", "--auth-local=trust"],
    )  # fmt: skip
    _run(
        [*runner, "openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-subj", "/CN=db",
         "-out", str(data / "server.crt"), "-keyout", str(data / "server.key")],
    )  # fmt: skip
    log = data.parent / "postgres.log"

    def start(port: int) -> tuple[subprocess.Popen[bytes], int]:
        # PostgreSQL cannot bind port 0 and say which port it got: a free port, and another
        # one if something took it before the server bound it.
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*runner, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k",
                 str(data), "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode:
            text = log.read_text(errors="replace")
            if server.poll() is not None:
                if "could not bind" in text:
                    raise PortTaken(f"port {port}: {text[-500:]}")
                pytest.fail(f"PostgreSQL exited with {server.returncode}:\n{text}")
            if time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"PostgreSQL did not accept connections on {port} within 60s:\n{text}")
            time.sleep(0.1)
        return server, port

    server, port = on_free_port(start)
    try:
        _run(
            [*runner, str(bindir / "createdb"), "-h", str(data), "-p", str(port), "-U", "mlflow",
             "mlflow"],
        )  # fmt: skip
        yield Postgres(port=port, user="mlflow", password=password, database="mlflow")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data.parent, ignore_errors=True)
