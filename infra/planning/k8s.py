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
    node_role: str = "serving",
) -> Manifest:
    selector = labels(name, "model-server")
    container = {
        "name": "server",
        "image": image,
        # Re-check registry credentials on every start (CIS 5.1.x); tags are immutable anyway.
        "imagePullPolicy": "Always",
        "args": ["python", "-m", "training_jobs.serve"],
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
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
) -> Manifest:
    metadata: Manifest = {"name": name, "namespace": namespace, "labels": labels(name, component)}
    if internal_load_balancer:
        metadata["annotations"] = dict(INTERNAL_NLB_ANNOTATIONS)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "LoadBalancer" if internal_load_balancer else "ClusterIP",
            "selector": labels(name, component),
            "ports": [{"name": "http", "port": port, "targetPort": target}],
        },
    }


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


def mlflow_deployment(
    *,
    name: str,
    namespace: str,
    image: str,
    service_account: str,
    artifacts_destination: str,
    database_secret: str | None,
    region: str,
) -> Manifest:
    """The MLflow tracking server; sqlite on a volume unless a database secret is given."""
    selector = labels(name, "tracking")
    backend = "$(MLFLOW_BACKEND_STORE_URI)" if database_secret else "sqlite:////data/mlflow.db"
    env: list[Manifest] = [{"name": "AWS_REGION", "value": region}]
    if database_secret:
        env.append(
            {
                "name": "MLFLOW_BACKEND_STORE_URI",
                "valueFrom": {"secretKeyRef": {"name": database_secret, "key": "uri"}},
            }
        )
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": TMP_DIR}]
    if not database_secret:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}})
        mounts.append({"name": "data", "mountPath": "/data"})
    container = {
        "name": "mlflow",
        "image": image,
        # Re-check registry credentials on every start (CIS 5.1.x); tags are immutable anyway.
        "imagePullPolicy": "Always",
        "args": [
            "mlflow",
            "server",
            "--host",
            ALL_INTERFACES,
            "--port",
            str(MLFLOW_PORT),
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            artifacts_destination,
            "--serve-artifacts",
        ],
        "ports": [{"name": "http", "containerPort": MLFLOW_PORT}],
        "env": env,
        "resources": {
            "requests": {"cpu": "250m", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
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
            # sqlite on a ReadWriteOnce volume: never two pods at once.
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


def persistent_volume_claim(*, name: str, namespace: str, size_gib: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "gp3",
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
