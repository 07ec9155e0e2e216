"""Tracking: the MLflow tracking server on the cluster and its backend database.

staging/prod: RDS PostgreSQL, encrypted with the platform key, backed up, deletion-protected
(and `protect`ed in prod), password generated as a Pulumi secret and handed to MLflow only
through a Kubernetes Secret. dev: sqlite on an encrypted EBS volume, one replica.
Artifacts go to the models bucket through EKS Pod Identity: no keys anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra import defaults
from infra.components.identity import ServiceAccountRef, pod_identity_role
from infra.planning import iam
from infra.planning import k8s as manifests
from infra.planning.tags import resource_tags

MLFLOW_NAME = "mlflow"
DB_NAME = "mlflow"
DB_USER = "mlflow"


@dataclass(frozen=True)
class TrackingArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    namespace: str
    provider: k8s.Provider
    cluster_name: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    image: pulumi.Input[str]
    models_bucket_name: pulumi.Input[str]
    models_bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    database: str  # "rds" | "in_cluster"
    db_instance_class: str
    db_allocated_storage_gib: int
    db_engine_version: str
    db_multi_az: bool
    db_backup_retention_days: int
    db_deletion_protection: bool
    storage_gib: int
    protect: bool


def _load_balancer_url(status: k8s.core.v1.outputs.ServiceStatus | None) -> str:
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    if not ingress or not ingress[0].hostname:
        raise ValueError("the MLflow Service has no load balancer address yet")
    return f"http://{ingress[0].hostname}:{manifests.MLFLOW_PORT}"


class Tracking(pulumi.ComponentResource):
    tracking_uri: pulumi.Output[str]
    cluster_tracking_uri: str

    def __init__(
        self, name: str, args: TrackingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:tracking:Tracking", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        base = f"{args.base_name}-tracking"
        ns = args.namespace

        pod_identity_role(
            base,
            parent=self,
            tags=args.tags,
            policy=pulumi.Output.all(args.models_bucket_arn, args.kms_key_arn).apply(
                lambda a: json.dumps(
                    iam.bucket_access_policy(read_arns=[], write_arns=[a[0]], kms_key_arn=a[1])
                )
            ),
            bind_to=ServiceAccountRef(args.cluster_name, ns, MLFLOW_NAME),
        )
        k8s.core.v1.ServiceAccount(
            f"{base}-sa",
            metadata={"name": MLFLOW_NAME, "namespace": ns},
            automount_service_account_token=False,
            opts=k8s_opts,
        )

        secret_name: str | None = None
        if args.database == "rds":
            secret_name = f"{MLFLOW_NAME}-database"
            uri = self._rds(base, args)
            k8s.core.v1.Secret(
                f"{base}-db-secret",
                metadata={"name": secret_name, "namespace": ns},
                string_data={"uri": uri},
                type="Opaque",
                opts=k8s_opts,
            )
        else:
            pvc = manifests.persistent_volume_claim(
                name=f"{MLFLOW_NAME}-data", namespace=ns, size_gib=args.storage_gib
            )
            k8s.core.v1.PersistentVolumeClaim(
                f"{base}-data", metadata=pvc["metadata"], spec=pvc["spec"], opts=k8s_opts
            )

        deployment = pulumi.Output.all(args.image, args.models_bucket_name).apply(
            lambda a: manifests.mlflow_deployment(
                name=MLFLOW_NAME,
                namespace=ns,
                image=a[0],
                service_account=MLFLOW_NAME,
                artifacts_destination=f"s3://{a[1]}/mlflow",
                database_secret=secret_name,
                region=args.region,
            )
        )
        k8s.apps.v1.Deployment(
            f"{base}-server",
            metadata=deployment.apply(lambda d: d["metadata"]),
            spec=deployment.apply(lambda d: d["spec"]),
            opts=k8s_opts,
        )
        svc = manifests.service(
            name=MLFLOW_NAME,
            namespace=ns,
            component="tracking",
            port=manifests.MLFLOW_PORT,
            target="http",
            # Batch jobs run outside the cluster: they reach MLflow through the VPC.
            internal_load_balancer=True,
        )
        service = k8s.core.v1.Service(
            f"{base}-svc", metadata=svc["metadata"], spec=svc["spec"], opts=k8s_opts
        )
        policy = manifests.network_policy(
            name=MLFLOW_NAME, namespace=ns, component="tracking", port="http"
        )
        k8s.networking.v1.NetworkPolicy(
            f"{base}-netpol", metadata=policy["metadata"], spec=policy["spec"], opts=k8s_opts
        )
        self.tracking_uri = service.status.apply(_load_balancer_url)
        self.cluster_tracking_uri = manifests.service_url(MLFLOW_NAME, ns, manifests.MLFLOW_PORT)
        self.register_outputs({"tracking_uri": self.tracking_uri})

    def _rds(self, base: str, args: TrackingArgs) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        password = random.RandomPassword(
            f"{base}-db-password",
            length=32,
            special=True,
            # RDS refuses '/', '"', '@' and spaces in master passwords.
            override_special="!#$%^&*()-_=+[]{}:?",
            opts=child,
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{base}-db-subnets",
            subnet_ids=args.subnet_ids,
            tags=resource_tags(f"{base}-db-subnets", args.tags),
            opts=child,
        )
        security_group = aws.ec2.SecurityGroup(
            f"{base}-db-sg",
            description="PostgreSQL from the EKS cluster only",
            vpc_id=args.vpc_id,
            tags=resource_tags(f"{base}-db-sg", args.tags),
            opts=child,
        )
        # A separate rule, not an inline one: the database (~12 min) then no longer waits
        # for the cluster (~12 min) that owns the source security group.
        aws.vpc.SecurityGroupIngressRule(
            f"{base}-db-from-cluster",
            security_group_id=security_group.id,
            description="PostgreSQL from cluster pods",
            ip_protocol="tcp",
            from_port=5432,
            to_port=5432,
            referenced_security_group_id=args.cluster_security_group_id,
            tags=resource_tags(f"{base}-db-from-cluster", args.tags),
            opts=child,
        )
        parameters = aws.rds.ParameterGroup(
            f"{base}-db-params",
            family=f"postgres{args.db_engine_version.split('.')[0]}",
            parameters=[
                # Clients must use TLS (CKV2_AWS_69).
                aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1"),
                aws.rds.ParameterGroupParameterArgs(
                    name="log_min_duration_statement", value="1000"
                ),
            ],
            tags=resource_tags(f"{base}-db-params", args.tags),
            opts=child,
        )
        instance = aws.rds.Instance(
            f"{base}-db",
            engine="postgres",
            engine_version=args.db_engine_version,
            instance_class=args.db_instance_class,
            allocated_storage=args.db_allocated_storage_gib,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            db_name=DB_NAME,
            username=DB_USER,
            password=password.result,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[security_group.id],
            parameter_group_name=parameters.name,
            multi_az=args.db_multi_az,
            publicly_accessible=False,
            backup_retention_period=args.db_backup_retention_days,
            deletion_protection=args.db_deletion_protection,
            skip_final_snapshot=not args.protect,
            final_snapshot_identifier=f"{base}-db-final" if args.protect else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            iam_database_authentication_enabled=True,
            tags=resource_tags(f"{base}-db", args.tags),
            opts=defaults.stateful_options(self, protect=args.protect),
        )
        return pulumi.Output.secret(
            pulumi.Output.all(instance.address, password.result).apply(
                lambda a: (
                    f"postgresql://{DB_USER}:{quote(a[1], safe='')}@{a[0]}:5432/{DB_NAME}"
                    "?sslmode=require"
                )
            )
        )
