"""Run a Deployment from the plan as a container on this machine, as the kubelet would.

The pod spec is translated field by field into engine flags; a field this translation does
not know fails loudly, so a plan cannot silently ask for something the local run ignores.
What has no meaning on one host (node selection, spreading, service accounts) is listed in
`IGNORED_POD_FIELDS` with the reason. Everything else the plan says is honoured: command,
args, env (values and Secret references), ports, probes, CPU and memory limits, user and
group, read-only root, dropped capabilities, no privilege escalation, volumes (emptyDir,
Secret, PersistentVolumeClaim), the pre-stop hook and the termination grace period.

The few translations are explicit arguments: which local image is the plan's image (by
content), the Secrets' values (the plan shows `[secret]`), what the cluster's DNS names
resolve to (loopback: every pod shares the host network here), and the environment the
platform gives a pod implicitly (its pod identity's credentials, the emulator's endpoint).
Podman 4.3's `kube play` would do much of this, but it ignores readiness and startup
probes and crashes on Secret volumes, so the translation is done here, for either engine.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mlops_local.engine import Engine, EngineError

Manifest = dict[str, Any]

# Pod and container fields with no effect on a single host, and why.
IGNORED_POD_FIELDS: Final = {
    "serviceAccountName": "pod identity: the caller passes the role's credentials as env",
    "automountServiceAccountToken": "no Kubernetes API here",
    "nodeSelector": "one host",
    "topologySpreadConstraints": "one host",
    "tolerations": "one host",
    "affinity": "one host",
    "priorityClassName": "one host",
}
IGNORED_CONTAINER_FIELDS: Final = {
    "imagePullPolicy": "the image is the local build of the plan's image (by content)",
    "name": "used for the container name",
}
KNOWN_POD_FIELDS: Final = frozenset(
    {"containers", "volumes", "securityContext", "terminationGracePeriodSeconds"}
    | set(IGNORED_POD_FIELDS)
)
KNOWN_CONTAINER_FIELDS: Final = frozenset(
    {
        "image",
        "command",
        "args",
        "env",
        "ports",
        "resources",
        "securityContext",
        "volumeMounts",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "lifecycle",
    }
    | set(IGNORED_CONTAINER_FIELDS)
)
DEFAULT_GRACE_SECONDS: Final = 30


class PodSpecError(Exception):
    """The pod spec asks for something this translation cannot honour; names the field."""


class PodFailed(Exception):
    """The pod did not become ready or exited; the message ends with its log."""


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    period_s: float
    failure_threshold: int
    initial_delay_s: float

    @property
    def budget_s(self) -> float:
        return self.initial_delay_s + self.period_s * self.failure_threshold


# A failing readiness probe never restarts a pod: it only keeps the Deployment from being
# available, and `pulumi up` gives up after pulumi-kubernetes' await timeout (10 minutes for
# a Deployment unless `pulumi.com/timeoutSeconds` says otherwise). A startup probe that
# runs out does restart it, so that one keeps its own budget.
READINESS_AWAIT_S: Final = 600.0


@dataclass(frozen=True)
class PodRun:
    """What the engine runs for one Deployment's pod (one replica)."""

    name: str
    container: str
    argv: list[str]  # engine arguments after `run`
    ports: tuple[int, ...]
    startup: Probe | None
    readiness: Probe | None
    liveness: Probe | None
    pre_stop_sleep_s: float
    grace_s: float
    memory_limit_bytes: int | None
    run_as_user: int | None
    read_only_root: bool
    replicas_in_plan: int
    notes: tuple[str, ...] = field(default=())


def cpu_quantity(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def memory_bytes(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12}  # fmt: skip
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def _probe(spec: Manifest | None, ports: Mapping[str, int], where: str) -> Probe | None:
    if spec is None:
        return None
    unknown = set(spec) - {
        "httpGet", "periodSeconds", "failureThreshold", "initialDelaySeconds", "timeoutSeconds",
        "successThreshold",
    }  # fmt: skip
    if unknown or "httpGet" not in spec:
        raise PodSpecError(f"{where}: only httpGet probes run locally (got {sorted(spec)})")
    get = spec["httpGet"]
    port = get.get("port")
    resolved = ports.get(port) if isinstance(port, str) else port
    if not isinstance(resolved, int):
        raise PodSpecError(f"{where}.httpGet.port: {port!r} names no container port")
    return Probe(
        path=str(get.get("path", "/")),
        port=resolved,
        period_s=float(spec.get("periodSeconds", 10)),
        failure_threshold=int(spec.get("failureThreshold", 3)),
        initial_delay_s=float(spec.get("initialDelaySeconds", 0)),
    )


def _unknown(spec: Manifest, known: frozenset[str], where: str) -> None:
    extra = sorted(set(spec) - known)
    if extra:
        raise PodSpecError(
            f"{where}: {', '.join(extra)} cannot be honoured on the local engine; the local "
            "platform would silently differ from the plan"
        )


def translate(
    deployment: Manifest,
    *,
    image_for: Callable[[str], str],
    secrets: Mapping[str, Mapping[str, str]],
    volumes_dir: Path,
    hosts: Mapping[str, str],
    implicit_env: Mapping[str, str],
) -> PodRun:
    """The engine run of the Deployment's pod; raises PodSpecError on anything unknown."""
    meta = deployment.get("metadata") or {}
    name = f"{meta.get('namespace', 'default')}-{meta.get('name', 'pod')}"
    where = f"Deployment {meta.get('namespace')}/{meta.get('name')}"
    spec = deployment.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    _unknown(pod, KNOWN_POD_FIELDS, f"{where} spec.template.spec")
    containers = pod.get("containers") or []
    if len(containers) != 1:
        raise PodSpecError(f"{where}: {len(containers)} containers; the local run takes one")
    container = containers[0]
    cwhere = f"{where} container {container.get('name')!r}"
    _unknown(container, KNOWN_CONTAINER_FIELDS, cwhere)

    argv = ["--detach", "--name", name, "--network", "host", "--init"]
    notes: list[str] = []

    # Identity and hardening.
    pod_sc = pod.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    _unknown(
        pod_sc,
        frozenset({"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}),
        f"{where} pod securityContext",
    )
    _unknown(
        sc,
        frozenset(
            {
                "runAsNonRoot", "runAsUser", "runAsGroup", "readOnlyRootFilesystem",
                "allowPrivilegeEscalation", "capabilities", "seccompProfile", "privileged",
            }
        ),
        f"{cwhere} securityContext",
    )  # fmt: skip
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    if non_root and (user is None or int(user) == 0):
        raise PodSpecError(f"{cwhere}: runAsNonRoot without a non-zero runAsUser")
    if user is not None:
        argv += ["--user", f"{int(user)}:{int(group if group is not None else user)}"]
    fs_group = pod_sc.get("fsGroup")
    if fs_group is not None:
        argv += ["--group-add", str(int(fs_group))]
    read_only = bool(sc.get("readOnlyRootFilesystem", False))
    if read_only:
        argv.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        raise PodSpecError(f"{cwhere}: privileged containers are not run locally")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        argv += ["--cap-drop", str(cap)]
    for cap in caps.get("add") or []:
        argv += ["--cap-add", str(cap)]
    for seccomp in (pod_sc.get("seccompProfile"), sc.get("seccompProfile")):
        if seccomp and seccomp.get("type") not in ("RuntimeDefault", None):
            raise PodSpecError(f"{cwhere}: seccomp profile {seccomp!r} (only RuntimeDefault)")

    # Resources: limits are what the kernel enforces; requests only place pods.
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    memory_limit = memory_bytes(str(limits["memory"])) if "memory" in limits else None
    if memory_limit is not None:
        # No swap, as on a kubelet.
        argv += ["--memory", str(memory_limit), "--memory-swap", str(memory_limit)]
    if "cpu" in limits:
        argv += ["--cpus", f"{cpu_quantity(str(limits['cpu'])):g}"]
    if set(limits) - {"memory", "cpu"}:
        raise PodSpecError(f"{cwhere}: resource limits {sorted(limits)} (memory, cpu only)")

    # Ports: on the host network the container's ports are the host's.
    ports = {
        str(p.get("name", p["containerPort"])): int(p["containerPort"])
        for p in container.get("ports") or []
    }

    # Environment, in the pod spec's order (later entries may refer to earlier ones).
    env: dict[str, str] = dict(implicit_env)
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif "valueFrom" in entry:
            ref = (entry["valueFrom"] or {}).get("secretKeyRef")
            if ref is None:
                raise PodSpecError(
                    f"{cwhere} env {entry['name']}: only secretKeyRef is resolved locally"
                )
            env[entry["name"]] = _secret_value(secrets, ref["name"], ref["key"], cwhere)
        else:
            env[entry["name"]] = ""
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    for host, address in sorted(hosts.items()):
        argv += ["--add-host", f"{host}:{address}"]

    # Volumes.
    declared = {v["name"]: v for v in pod.get("volumes") or []}
    owner = int(fs_group if fs_group is not None else (user if user is not None else 0))
    for mount in container.get("volumeMounts") or []:
        volume = declared.get(mount["name"])
        if volume is None:
            raise PodSpecError(f"{cwhere}: volumeMount {mount['name']!r} names no volume")
        source = _volume_source(volume, secrets, volumes_dir / name, owner, cwhere)
        option = ":ro" if mount.get("readOnly") else ""
        argv += ["--volume", f"{source}:{mount['mountPath']}{option}"]
    mounted = {m["name"] for m in container.get("volumeMounts") or []}
    for unused in sorted(set(declared) - mounted):
        notes.append(f"volume {unused!r} is declared but not mounted")

    lifecycle = container.get("lifecycle") or {}
    pre_stop = (lifecycle.get("preStop") or {}).get("sleep", {}).get("seconds", 0)
    if set(lifecycle) - {"preStop"} or set(lifecycle.get("preStop") or {}) - {"sleep"}:
        raise PodSpecError(f"{cwhere}: lifecycle {lifecycle!r} (only a preStop sleep)")
    grace = float(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
    argv += ["--stop-timeout", str(int(grace))]

    # The image's entrypoint is replaced by `command`, its CMD by `args`.
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    image = image_for(str(container["image"]))
    if command:
        argv += ["--entrypoint", command[0], image, *command[1:], *args]
    else:
        argv += [image, *args]

    replicas = int(spec.get("replicas", 1))
    if replicas != 1:
        notes.append(f"the plan runs {replicas} replicas; one runs here (one host, one port)")
    return PodRun(
        name=name,
        container=str(container.get("name")),
        argv=argv,
        ports=tuple(sorted(ports.values())),
        startup=_probe(container.get("startupProbe"), ports, f"{cwhere} startupProbe"),
        readiness=_probe(container.get("readinessProbe"), ports, f"{cwhere} readinessProbe"),
        liveness=_probe(container.get("livenessProbe"), ports, f"{cwhere} livenessProbe"),
        pre_stop_sleep_s=float(pre_stop),
        grace_s=grace,
        memory_limit_bytes=memory_limit,
        run_as_user=int(user) if user is not None else None,
        read_only_root=read_only,
        replicas_in_plan=replicas,
        notes=tuple(notes),
    )


def _secret_value(secrets: Mapping[str, Mapping[str, str]], name: str, key: str, where: str) -> str:
    if name not in secrets or key not in secrets[name]:
        raise PodSpecError(f"{where}: Secret {name!r} key {key!r} has no local value")
    return secrets[name][key]


def _volume_source(
    volume: Manifest,
    secrets: Mapping[str, Mapping[str, str]],
    pod_dir: Path,
    owner: int,
    where: str,
) -> Path:
    kinds = set(volume) - {"name"}
    path = pod_dir / str(volume["name"])
    if kinds == {"emptyDir"}:
        # A fresh scratch directory per run, owned by the pod's fsGroup, as on a kubelet.
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    elif kinds == {"persistentVolumeClaim"}:
        # A claim outlives its pods: the directory is kept across runs.
        claim = volume["persistentVolumeClaim"]["claimName"]
        path = pod_dir.parent / "claims" / str(claim)
        path.mkdir(parents=True, exist_ok=True)
    elif kinds == {"secret"}:
        source = volume["secret"]
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        secret_name = source["secretName"]
        items = source.get("items") or [
            {"key": key, "path": key} for key in sorted(secrets.get(secret_name, {}))
        ]
        for item in items:
            target = path / item["path"]
            target.write_text(_secret_value(secrets, secret_name, item["key"], where))
            target.chmod(0o440)
            _own(target, owner)
    else:
        raise PodSpecError(f"{where}: volume {volume['name']!r} of kind {sorted(kinds)}")
    _own(path, owner)
    path.chmod(0o770 if kinds != {"secret"} else 0o550)
    return path


def _own(path: Path, owner: int) -> None:
    """Give a volume to the pod's fsGroup, as the kubelet does (only root can)."""
    if os.geteuid() == 0:
        os.chown(path, owner, owner)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def http_status(port: int, path: str, host: str = "127.0.0.1", timeout_s: float = 2) -> int | None:
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None  # not listening (yet): what a probe sees while the server starts
    finally:
        connection.close()


class RunningPod:
    """One pod on the engine: started, probed as the kubelet would, stopped with its hook."""

    def __init__(self, engine: Engine, run: PodRun) -> None:
        self.engine = engine
        self.run = run
        self.started_at: float | None = None

    def start(self) -> RunningPod:
        self.engine.command("rm", "--force", self.run.name, check=False)
        busy = [p for p in self.run.ports if not port_free(p)]
        if busy:
            raise PodFailed(
                f"{self.run.name}: port(s) {busy} the plan gives this pod are taken on this host"
            )
        self.engine.command("run", *self.run.argv, timeout_s=120)
        self.started_at = time.monotonic()
        return self

    def state(self) -> dict[str, Any]:
        info = json.loads(self.engine.command("inspect", self.run.name).stdout)[0]
        state: dict[str, Any] = info.get("State") or {}
        return state

    def logs(self, lines: int = 40) -> str:
        result = self.engine.command("logs", "--tail", str(lines), self.run.name, check=False)
        return (result.stdout + result.stderr).strip()

    def _fail(self, why: str) -> PodFailed:
        return PodFailed(f"{self.run.name}: {why}; its log ends with:\n{self.logs()}")

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Wait for the startup probe within its budget (the kubelet would restart the pod
        after it), then for readiness within `pulumi up`'s await (or `timeout_s` for both);
        returns the seconds to ready."""
        assert self.started_at is not None
        for kind, probe in (("startup", self.run.startup), ("readiness", self.run.readiness)):
            if probe is None:
                continue
            own = probe.budget_s if kind == "startup" else READINESS_AWAIT_S
            budget = timeout_s if timeout_s is not None else own
            deadline = time.monotonic() + budget
            time.sleep(probe.initial_delay_s)
            while True:
                state = self.state()
                if not state.get("Running", False):
                    raise self._fail(self._exit_reason(state) + f" before its {kind} probe passed")
                if http_status(probe.port, probe.path) == 200:
                    break
                if time.monotonic() > deadline:
                    raise self._fail(
                        f"{kind} probe GET :{probe.port}{probe.path} not 200 within {budget:g}s"
                    )
                time.sleep(min(probe.period_s, 1.0))
        return time.monotonic() - self.started_at

    def _exit_reason(self, state: Mapping[str, Any]) -> str:
        limit = self.run.memory_limit_bytes
        if state.get("OOMKilled") or (state.get("ExitCode") == 137 and limit):
            return (
                f"OOMKilled: the kernel killed it at its memory limit "
                f"({(limit or 0) / 2**20:.0f} MiB, resources.limits.memory)"
            )
        return f"exited ({state.get('ExitCode')})"

    def exec(self, *command: str) -> str:
        return self.engine.command("exec", self.run.name, *command).stdout

    def memory_peak_bytes(self) -> int | None:
        """The container's peak memory as its cgroup counts it (v1 or v2)."""
        for path in (
            "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
            "/sys/fs/cgroup/memory.peak",  # cgroup v2
        ):
            with contextlib.suppress(EngineError, ValueError):
                return int(self.exec("cat", path).strip())
        return None

    def stop(self) -> None:
        """The pre-stop hook's pause, then SIGTERM and the grace period, then SIGKILL."""
        if self.run.pre_stop_sleep_s:
            time.sleep(min(self.run.pre_stop_sleep_s, 1.0))  # no endpoints to drain locally
        self.engine.command(
            "stop", "--time", str(int(self.run.grace_s)), self.run.name, check=False,
            timeout_s=self.run.grace_s + 60,
        )  # fmt: skip

    def remove(self) -> None:
        self.engine.command("rm", "--force", self.run.name, check=False)
