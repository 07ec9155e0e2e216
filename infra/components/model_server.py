"""ModelServer: the model server workload in its own namespace, with a pod identity that may
read models and write captures. Used on the platform's cluster and by ephemeral stacks on
the shared one."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.identity import (
    ServiceAccountRef,
    pod_identity_role,
    service_account_metadata,
)
from infra.planning import iam
from infra.planning import k8s as manifests
from training_jobs import contract

SERVER_NAME = "model-server"
TRACKING_SECRET = "model-server-tracking"
# The namespace of a long-lived stack's server; each ephemeral stack serves from its own.
SERVING_NAMESPACE = "mlops-serving"


@dataclass(frozen=True)
class ModelServerArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    provider: k8s.Provider
    cluster_name: pulumi.Input[str] | None  # None: an existing cluster without Pod Identity
    # The server's own namespace, which it creates (SERVING_NAMESPACE, or per ephemeral stack).
    namespace: str
    image: pulumi.Input[str]
    # The registered model it serves (its `champion` alias), and the registry it reads it from.
    model_name: str
    tracking_uri: pulumi.Input[str]
    # The MLflow account the server reads the registry with (basic auth).
    tracking_username: str | None
    tracking_password: pulumi.Output[str] | None
    replicas: int
    max_replicas: int
    cpu: str
    memory: str
    drain_seconds: int
    models_bucket_arn: pulumi.Input[str]
    captures_bucket_name: pulumi.Input[str]
    captures_bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    # Also an internal load balancer open to these CIDRs (None: in-cluster only).
    internal_lb_cidrs: tuple[str, ...] | None


class ModelServer(pulumi.ComponentResource):
    namespace: str
    namespace_resource: k8s.core.v1.Namespace
    service_url: str
    load_balancer_url: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:serving:ModelServer", name, None, opts)
        base = f"{args.base_name}-model-server"
        ns = args.namespace
        namespace = k8s.core.v1.Namespace(
            f"{base}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(**manifests.namespace_metadata(ns)),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=[namespace]
        )

        role = pod_identity_role(
            base,
            parent=self,
            tags=args.tags,
            policy=pulumi.Output.all(
                args.models_bucket_arn, args.captures_bucket_arn, args.kms_key_arn
            ).apply(
                lambda a: json.dumps(
                    iam.bucket_access_policy(read_arns=[a[0]], write_arns=[a[1]], kms_key_arn=a[2])
                )
            ),
            bind_to=ServiceAccountRef(args.cluster_name, ns, SERVER_NAME),
        )
        k8s.core.v1.ServiceAccount(
            f"{base}-sa",
            metadata=service_account_metadata(SERVER_NAME, ns, role, args.cluster_name),
            automount_service_account_token=False,
            opts=k8s_opts,
        )
        secret_env: dict[str, tuple[str, str]] = {}
        plain_env: dict[str, pulumi.Input[str]] = {
            contract.VAR_SERVE_MODEL_NAME: args.model_name,
            contract.VAR_SERVE_TRACKING_URI: args.tracking_uri,
            contract.VAR_SERVE_CAPTURE_BUCKET: args.captures_bucket_name,
            "AWS_REGION": args.region,
        }
        if args.tracking_username is not None and args.tracking_password is not None:
            k8s.core.v1.Secret(
                f"{base}-tracking-secret",
                metadata={"name": TRACKING_SECRET, "namespace": ns},
                string_data={"password": args.tracking_password},
                type="Opaque",
                opts=k8s_opts,
            )
            plain_env["MLFLOW_TRACKING_USERNAME"] = args.tracking_username
            secret_env["MLFLOW_TRACKING_PASSWORD"] = (TRACKING_SECRET, "password")
        deployment = pulumi.Output.all(image=args.image, **plain_env).apply(
            lambda a: manifests.model_server_deployment(
                name=SERVER_NAME,
                namespace=ns,
                image=a["image"],
                service_account=SERVER_NAME,
                replicas=args.replicas,
                cpu=args.cpu,
                memory=args.memory,
                drain_seconds=args.drain_seconds,
                env={
                    **{k: v for k, v in a.items() if k != "image"},
                    contract.VAR_SERVE_HOST: manifests.ALL_INTERFACES,
                    contract.VAR_SERVE_PORT: str(manifests.SERVER_PORT),
                    contract.VAR_SERVE_DRAIN_GRACE_S: str(args.drain_seconds),
                },
                secret_env=secret_env,
            )
        )
        k8s.apps.v1.Deployment(
            base,
            metadata=deployment.apply(lambda d: d["metadata"]),
            spec=deployment.apply(lambda d: d["spec"]),
            opts=k8s_opts,
        )
        svc = manifests.service(
            name=SERVER_NAME, namespace=ns, component="model-server", port=80, target="http"
        )
        k8s.core.v1.Service(
            f"{base}-svc", metadata=svc["metadata"], spec=svc["spec"], opts=k8s_opts
        )
        self.load_balancer_url = None
        if args.internal_lb_cidrs is not None:
            # The way in from the VPC (callers, `mlops verify`): never from the internet.
            lb = manifests.service(
                name=f"{SERVER_NAME}-internal",
                namespace=ns,
                component="model-server",
                port=80,
                target="http",
                internal_load_balancer=True,
                source_ranges=list(args.internal_lb_cidrs),
                selector_name=SERVER_NAME,
            )
            internal = k8s.core.v1.Service(
                f"{base}-internal-svc", metadata=lb["metadata"], spec=lb["spec"], opts=k8s_opts
            )
            self.load_balancer_url = internal.status.apply(
                lambda status: manifests.load_balancer_url(status, port=80)
            )
        hpa = manifests.horizontal_pod_autoscaler(
            name=SERVER_NAME,
            namespace=ns,
            min_replicas=args.replicas,
            max_replicas=args.max_replicas,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{base}-hpa", metadata=hpa["metadata"], spec=hpa["spec"], opts=k8s_opts
        )
        policy = manifests.network_policy(
            name=SERVER_NAME, namespace=ns, component="model-server", port="http"
        )
        k8s.networking.v1.NetworkPolicy(
            f"{base}-netpol", metadata=policy["metadata"], spec=policy["spec"], opts=k8s_opts
        )
        pdb = manifests.pod_disruption_budget(
            name=SERVER_NAME, namespace=ns, component="model-server"
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{base}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=k8s_opts
        )
        self.namespace = ns
        self.namespace_resource = namespace
        self.service_url = manifests.service_url(SERVER_NAME, ns, 80)
        self.register_outputs({})
