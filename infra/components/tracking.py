"""Tracking: the MLflow tracking server on the cluster, its namespace and its database.

staging/prod: RDS PostgreSQL, encrypted with the platform key, backed up, deletion-protected
(and `protect`ed in prod), password generated as a Pulumi secret. dev: sqlite on an
encrypted EBS volume, one replica. MLflow runs its basic-auth app: only the platform's
clients (the Batch jobs, through a Secrets Manager secret; the model server, through a
Kubernetes Secret) may write, so nobody else in the VPC can move the `champion` alias.
Clients write artifacts straight to the models bucket; the server only reads them (the UI).
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
from infra.components.identity import (
    ServiceAccountRef,
    pod_identity_role,
    service_account_metadata,
)
from infra.planning import iam
from infra.planning import k8s as manifests
from infra.planning.tags import resource_tags

MLFLOW_NAME = "mlflow"
DB_LOG_EXPORTS = ("postgresql", "upgrade")
DB_NAME = "mlflow"
DB_USER = "mlflow"
# The one MLflow account the platform's clients use (basic auth).
MLFLOW_ADMIN_USER = "mlops-admin"
# The server's namespace, which it creates. Fixed, not configured: model servers reach
# MLflow by its Service name in it, also those of ephemeral stacks sharing the cluster.
TRACKING_NAMESPACE = "mlflow"
IN_CLUSTER_URI = manifests.service_url(MLFLOW_NAME, TRACKING_NAMESPACE, manifests.MLFLOW_PORT)


@dataclass(frozen=True)
class TrackingClient:
    """What an MLflow client of the platform needs: where, and who it is (basic auth)."""

    uri: pulumi.Input[str]
    username: str
    password: pulumi.Output[str]  # a Pulumi secret
    # The Secrets Manager secret holding the password (Batch reads it at job start) and the
    # KMS key it is encrypted with.
    secret_arn: pulumi.Input[str]
    secret_key_arn: pulumi.Input[str]


@dataclass(frozen=True)
class TrackingArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    provider: k8s.Provider
    cluster_name: pulumi.Input[str] | None  # None: an existing cluster without Pod Identity
    cluster_security_group_id: pulumi.Input[str] | None  # RDS admits it (EKS only)
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    # Where MLflow's clients outside the cluster (Batch jobs) connect from.
    client_cidrs: tuple[str, ...]
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
    storage_class: str
    # Where Batch jobs reach MLflow; None: the internal load balancer's address.
    client_uri: str | None
    workers: int
    cpu: str
    memory: str
    protect: bool
    # Stateful protection beyond `protect`: a final snapshot on delete (staging and prod).
    final_snapshot: bool
    db_monitoring_interval_seconds: int  # 0: no enhanced monitoring
    log_retention_days: int


class Tracking(pulumi.ComponentResource):
    tracking_uri: pulumi.Output[str]
    credentials_secret_arn: pulumi.Output[str]
    client: TrackingClient

    def __init__(
        self, name: str, args: TrackingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:tracking:Tracking", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = f"{args.base_name}-tracking"
        ns = TRACKING_NAMESPACE
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
            # Clients write artifacts themselves; the server reads them for the UI.
            policy=pulumi.Output.all(args.models_bucket_arn, args.kms_key_arn).apply(
                lambda a: json.dumps(
                    iam.bucket_access_policy(read_arns=[a[0]], write_arns=[], kms_key_arn=a[1])
                )
            ),
            bind_to=ServiceAccountRef(args.cluster_name, ns, MLFLOW_NAME),
        )
        k8s.core.v1.ServiceAccount(
            f"{base}-sa",
            metadata=service_account_metadata(MLFLOW_NAME, ns, role, args.cluster_name),
            automount_service_account_token=False,
            opts=k8s_opts,
        )

        admin_password = random.RandomPassword(
            f"{base}-admin-password", length=40, special=False, opts=child
        )
        session_key = random.RandomPassword(
            f"{base}-session-key", length=64, special=False, opts=child
        )
        # Batch jobs read the client password from here (the job definitions' `secrets`).
        credentials = aws.secretsmanager.Secret(
            f"{base}-client-credentials",
            description=f"{base}: password of MLflow user {MLFLOW_ADMIN_USER}",
            kms_key_id=args.kms_key_arn,
            recovery_window_in_days=7 if args.protect else 0,
            tags=resource_tags(f"{base}-client-credentials", args.tags),
            opts=child,
        )
        aws.secretsmanager.SecretVersion(
            f"{base}-client-credentials-version",
            secret_id=credentials.id,
            secret_string=admin_password.result,
            opts=child,
        )

        secret_name = f"{MLFLOW_NAME}-server"
        if args.database == "rds":
            backend_uri = self._rds(base, args)
        else:
            backend_uri = pulumi.Output.from_input(manifests.MLFLOW_SQLITE_URI)
            pvc = manifests.persistent_volume_claim(
                name=f"{MLFLOW_NAME}-data",
                namespace=ns,
                size_gib=args.storage_gib,
                storage_class=args.storage_class,
            )
            k8s.core.v1.PersistentVolumeClaim(
                f"{base}-data", metadata=pvc["metadata"], spec=pvc["spec"], opts=k8s_opts
            )
        server_secret: dict[str, pulumi.Input[str]] = {
            manifests.MLFLOW_SECRET_ADMIN_PASSWORD: admin_password.result,
            manifests.MLFLOW_SECRET_FLASK_KEY: session_key.result,
            # The users table lives in the tracking database itself.
            manifests.MLFLOW_AUTH_FILE: backend_uri.apply(
                lambda uri: manifests.mlflow_auth_config(
                    database_uri=uri, admin_username=MLFLOW_ADMIN_USER
                )
            ),
        }
        if args.database == "rds":
            server_secret[manifests.MLFLOW_SECRET_BACKEND_URI] = backend_uri
        k8s.core.v1.Secret(
            f"{base}-server-secret",
            metadata={"name": secret_name, "namespace": ns},
            string_data=pulumi.Output.secret(server_secret),
            type="Opaque",
            opts=k8s_opts,
        )

        deployment = pulumi.Output.all(args.image, args.models_bucket_name).apply(
            lambda a: manifests.mlflow_deployment(
                name=MLFLOW_NAME,
                namespace=ns,
                image=a[0],
                service_account=MLFLOW_NAME,
                artifact_root=f"s3://{a[1]}/mlflow",
                secret_name=secret_name,
                database="rds" if args.database == "rds" else "sqlite",
                region=args.region,
                workers=args.workers,
                cpu=args.cpu,
                memory=args.memory,
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
            # Batch jobs run outside the cluster: they reach MLflow through the VPC, and
            # only from the subnets they run in.
            internal_load_balancer=True,
            source_ranges=list(args.client_cidrs),
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
        self.tracking_uri = (
            pulumi.Output.from_input(args.client_uri)
            if args.client_uri
            else service.status.apply(
                lambda status: manifests.load_balancer_url(status, port=manifests.MLFLOW_PORT)
            )
        )
        self.credentials_secret_arn = credentials.arn
        self.client = TrackingClient(
            uri=self.tracking_uri,
            username=MLFLOW_ADMIN_USER,
            password=pulumi.Output.secret(admin_password.result),
            secret_arn=credentials.arn,
            secret_key_arn=args.kms_key_arn,
        )
        self.register_outputs(
            {"tracking_uri": self.tracking_uri, "credentials_secret_arn": credentials.arn}
        )

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
        if args.cluster_security_group_id is None:
            raise ValueError("RDS for MLflow needs the EKS cluster's security group")
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
        # A fixed identifier, so the log groups RDS writes to can exist first, encrypted and
        # with retention (RDS would create them with neither).
        identifier = f"{base}-db"
        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{base}-db-logs-{kind}",
                name=f"/aws/rds/instance/{identifier}/{kind}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.kms_key_arn,
                tags=resource_tags(f"{base}-db-logs-{kind}", args.tags),
                opts=child,
            )
            for kind in DB_LOG_EXPORTS
        ]
        monitoring_role = None
        if args.db_monitoring_interval_seconds:
            monitoring_role = aws.iam.Role(
                f"{base}-db-monitoring-role",
                assume_role_policy=json.dumps(
                    iam.assume_role_policy("monitoring.rds.amazonaws.com")
                ),
                tags=resource_tags(f"{base}-db-monitoring-role", args.tags),
                opts=child,
            )
            aws.iam.RolePolicyAttachment(
                f"{base}-db-monitoring",
                role=monitoring_role.name,
                policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
                opts=child,
            )
        instance = aws.rds.Instance(
            f"{base}-db",
            identifier=identifier,
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
            skip_final_snapshot=not args.final_snapshot,
            final_snapshot_identifier=f"{base}-db-final" if args.final_snapshot else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            enabled_cloudwatch_logs_exports=list(DB_LOG_EXPORTS),
            monitoring_interval=args.db_monitoring_interval_seconds,
            monitoring_role_arn=monitoring_role.arn if monitoring_role else None,
            iam_database_authentication_enabled=True,
            tags=resource_tags(f"{base}-db", args.tags),
            opts=pulumi.ResourceOptions.merge(
                defaults.stateful_options(self, protect=args.protect),
                pulumi.ResourceOptions(depends_on=log_groups),
            ),
        )
        return pulumi.Output.secret(
            pulumi.Output.all(instance.address, password.result).apply(
                lambda a: (
                    f"postgresql://{DB_USER}:{quote(a[1], safe='')}@{a[0]}:5432/{DB_NAME}"
                    "?sslmode=require"
                )
            )
        )
