"""Kubernetes objects of the platform as plain manifests (dicts).

Components pass these to pulumi_kubernetes; `mlops plan --k8s-out` writes the recorded
inputs back out as YAML for schema validation and scanners. Hardened by default: non-root,
read-only root filesystem, no privilege escalation, all capabilities dropped, seccomp.
"""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]

SERVER_PORT = 8080
MLFLOW_PORT = 5000
RUN_AS_USER = 10001
# The root filesystem is read-only; /tmp is a pod-private emptyDir.
TMP_DIR = "/tmp"  # noqa: S108
# Inside a pod, listening on every interface is how a Service reaches the container.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def service_url(name: str, namespace: str, port: int) -> str:
    """In-cluster URL of a Service."""
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"


def labels(app: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "mlops-platform",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def namespace_metadata(name: str) -> Manifest:
    return {
        "name": name,
        "labels": {
            # Pod Security Admission: refuse privileged pods in platform namespaces.
            "pod-security.kubernetes.io/enforce": "restricted",
            "app.kubernetes.io/part-of": "mlops-platform",
        },
    }


def cpu_limit(request: str) -> str:
    """Twice the CPU request, in millicores ("500m" → "1000m", "1" → "2000m")."""
    millicores = int(request[:-1]) if request.endswith("m") else round(float(request) * 1000)
    return f"{2 * millicores}m"


def restricted_container_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def termination_grace_seconds(drain_seconds: int) -> int:
    """Longer than the drain plus the pre-stop pause, so the kubelet never kills mid-drain."""
    return drain_seconds + PRESTOP_SLEEP_SECONDS + 10


# Endpoints take a few seconds to drop a terminating pod; keep serving meanwhile.
PRESTOP_SLEEP_SECONDS = 5


def model_server_deployment(
    *,
    name: str,
    namespace: str,
    image: str,
    service_account: str,
    replicas: int,
    cpu: str,
    memory: str,
    drain_seconds: int,
    env: dict[str, str],
    secret_env: dict[str, tuple[str, str]] | None = None,
    node_role: str = "serving",
) -> Manifest:
    """The model server; `secret_env` maps variables to (Secret name, key)."""
    selector = labels(name, "model-server")
    variables: list[Manifest] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    variables += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for k, (secret, key) in sorted((secret_env or {}).items())
    ]
    container = {
        "name": "server",
        "image": image,
        # Re-check registry credentials on every start (CIS 5.1.x); tags are immutable anyway.
        "imagePullPolicy": "Always",
        "command": ["python", "-m", "training_jobs.serve"],
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "env": variables,
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            # Headroom for bursts (a limit equal to the request would throttle the batcher).
            "limits": {"cpu": cpu_limit(cpu), "memory": memory},
        },
        "readinessProbe": {
            "httpGet": {"path": "/health/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health/live", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {
            "httpGet": {"path": "/health/live", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": selector},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "serviceAccountName": service_account,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "terminationGracePeriodSeconds": termination_grace_seconds(drain_seconds),
                    "nodeSelector": {"mlops/role": node_role},
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": key,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector},
                        }
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                    ],
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


# An internal Network Load Balancer: reachable inside the VPC (Batch jobs), never public.
INTERNAL_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
}


def service(
    *,
    name: str,
    namespace: str,
    component: str,
    port: int,
    target: str,
    internal_load_balancer: bool = False,
    source_ranges: list[str] | None = None,
    selector_name: str | None = None,
) -> Manifest:
    """A ClusterIP Service, or an internal NLB one reachable only from `source_ranges` (the
    in-tree controller opens the node security group's NodePort to exactly these), of the
    pods of `selector_name` (default: `name`)."""
    metadata: Manifest = {"name": name, "namespace": namespace, "labels": labels(name, component)}
    spec: Manifest = {
        "type": "LoadBalancer" if internal_load_balancer else "ClusterIP",
        "selector": labels(selector_name or name, component),
        "ports": [{"name": "http", "port": port, "targetPort": target}],
    }
    if internal_load_balancer:
        metadata["annotations"] = dict(INTERNAL_NLB_ANNOTATIONS)
        if source_ranges:
            spec["loadBalancerSourceRanges"] = sorted(source_ranges)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def load_balancer_url(status: Any, *, port: int) -> str:
    """`http://<host>:<port>` of a LoadBalancer Service's status (pulumi output type)."""
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    if not ingress or not ingress[0].hostname:
        raise ValueError("the Service has no load balancer address yet")
    return f"http://{ingress[0].hostname}:{port}"


def horizontal_pod_autoscaler(
    *, name: str, namespace: str, min_replicas: int, max_replicas: int
) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def network_policy(*, name: str, namespace: str, component: str, port: str) -> Manifest:
    """Only the serving port is reachable; everything else into the pods is refused."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": labels(name, component)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}],
        },
    }


def pod_disruption_budget(*, name: str, namespace: str, component: str) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name, component)}},
    }


# MLflow's server validates the Host header (DNS-rebinding protection): only these reach it.
def mlflow_allowed_hosts(*, name: str, namespace: str, port: int, region: str) -> list[str]:
    """The host names the plan gives MLflow's clients: the Service's cluster names (pods)
    and the internal load balancer's (Batch jobs; its name is AWS's, so by its domain);
    plus loopback on any port, which `kubectl port-forward` uses (and MLflow allows by
    default, before a list replaces its defaults)."""
    service = f"{name}.{namespace}"
    return [
        f"{service}.svc.cluster.local:{port}",
        f"{service}.svc:{port}",
        f"{service}:{port}",
        f"*.elb.{region}.amazonaws.com:{port}",
        "localhost:*",
        "127.0.0.1:*",
    ]


# Measured with MLflow 3.17 (sqlite, idle, one core): the `mlflow server` parent process
# holds ~280 MiB and each uvicorn worker ~290 MiB more; 4 workers plus the job-execution
# consumers (the defaults) need ~3.5 GiB and ~60 s to start. One or two workers and no job
# execution fit ~0.6-0.9 GiB and start in ~12 s.
MLFLOW_PARENT_MIB = 280
MLFLOW_WORKER_MIB = 290
MLFLOW_MEMORY_HEADROOM = 1.5


def mlflow_memory_floor_mib(workers: int) -> int:
    """The least memory limit MLflow's container may have for `workers` workers."""
    return round((MLFLOW_PARENT_MIB + MLFLOW_WORKER_MIB * workers) * MLFLOW_MEMORY_HEADROOM)


def memory_mib(quantity: str) -> int:
    """A Kubernetes memory quantity ("512Mi", "2Gi", "1G") in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "M": 1e6 / 2**20,
             "G": 1e9 / 2**20}  # fmt: skip
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return round(float(quantity[: -len(suffix)]) * factor)
    return round(int(quantity) / 2**20)


MLFLOW_AUTH_DIR = "/etc/mlflow/auth"
MLFLOW_AUTH_FILE = "basic_auth.ini"
# Keys of the Secret that holds everything confidential about the server.
MLFLOW_SECRET_ADMIN_PASSWORD = "admin-password"
MLFLOW_SECRET_FLASK_KEY = "flask-secret-key"
MLFLOW_SECRET_BACKEND_URI = "backend-store-uri"


def mlflow_auth_config(*, database_uri: str, admin_username: str) -> str:
    """basic_auth.ini: users live in the tracking database; everyone else may only read."""
    # MLflow reads the file with configparser, whose interpolation treats `%` (in the
    # URL-encoded database password) as syntax.
    escaped = database_uri.replace("%", "%%")
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {escaped}\n"
        f"admin_username = {admin_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # PBKDF2 per request costs ~10 ms; a minute of cached checks keeps clients fast.
        "auth_cache_ttl_seconds = 60\n"
    )


def mlflow_deployment(
    *,
    name: str,
    namespace: str,
    image: str,
    service_account: str,
    artifact_root: str,
    secret_name: str,
    database: str,  # "rds": the URI is in the Secret; "sqlite": on the data volume
    region: str,
    workers: int,
    cpu: str,
    memory: str,
) -> Manifest:
    """The MLflow tracking server with the basic-auth app.

    Clients write artifacts straight to S3 (`--no-serve-artifacts`): the server only records
    where they are. Nothing confidential is on its command line: the backend URI (with the
    database password), the admin password and the session key come from the Secret.
    """
    selector = labels(name, "tracking")

    def secret_env(variable: str, key: str) -> Manifest:
        return {
            "name": variable,
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}},
        }

    env: list[Manifest] = [
        {"name": "AWS_REGION", "value": region},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        # The job-execution consumers would add ~2 GiB and nothing here submits jobs.
        {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"},
        {
            "name": "MLFLOW_SERVER_ALLOWED_HOSTS",
            "value": ",".join(
                mlflow_allowed_hosts(
                    name=name, namespace=namespace, port=MLFLOW_PORT, region=region
                )
            ),
        },
        {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": f"{MLFLOW_AUTH_DIR}/{MLFLOW_AUTH_FILE}"},
        secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", MLFLOW_SECRET_ADMIN_PASSWORD),
        secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", MLFLOW_SECRET_FLASK_KEY),
    ]
    if database == "rds":
        env.append(secret_env("MLFLOW_BACKEND_STORE_URI", MLFLOW_SECRET_BACKEND_URI))
    else:
        env.append({"name": "MLFLOW_BACKEND_STORE_URI", "value": MLFLOW_SQLITE_URI})
    volumes: list[Manifest] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {
            "name": "auth",
            "secret": {
                "secretName": secret_name,
                "items": [{"key": MLFLOW_AUTH_FILE, "path": MLFLOW_AUTH_FILE}],
            },
        },
    ]
    mounts: list[Manifest] = [
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "auth", "mountPath": MLFLOW_AUTH_DIR, "readOnly": True},
    ]
    if database != "rds":
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}})
        mounts.append({"name": "data", "mountPath": MLFLOW_DATA_DIR})
    container = {
        "name": "mlflow",
        "image": image,
        # Re-check registry credentials on every start (CIS 5.1.x); the digest pins the bytes.
        "imagePullPolicy": "Always",
        "command": ["mlflow", "server"],
        "args": [
            "--app-name",
            "basic-auth",
            "--host",
            ALL_INTERFACES,
            "--port",
            str(MLFLOW_PORT),
            "--workers",
            str(workers),
            "--default-artifact-root",
            artifact_root,
            "--no-serve-artifacts",
        ],
        "ports": [{"name": "http", "containerPort": MLFLOW_PORT}],
        "env": env,
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu_limit(cpu), "memory": memory},
        },
        # Start-up (migrations, imports) takes ~12 s on one core, longer on a busy node:
        # the startup probe allows 3 minutes before liveness takes over.
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 36,
        },
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": selector},
        "spec": {
            "replicas": 1,
            # sqlite on a ReadWriteOnce volume (dev): never two pods at once.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "serviceAccountName": service_account,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "nodeSelector": {"mlops/role": "system"},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


MLFLOW_DATA_DIR = "/data"
MLFLOW_SQLITE_URI = f"sqlite:///{MLFLOW_DATA_DIR}/mlflow.db"


def persistent_volume_claim(
    *, name: str, namespace: str, size_gib: int, storage_class: str
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": f"{size_gib}Gi"}},
        },
    }


def kubeconfig(*, cluster_name: str, endpoint: str, ca_data: str, region: str) -> Manifest:
    """Kubeconfig that gets a token from `aws eks get-token`: nothing long-lived stored."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
            }
        ],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
        ],
        "current-context": cluster_name,
        "users": [
            {
                "name": cluster_name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                    }
                },
            }
        ],
    }
