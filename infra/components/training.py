"""TrainingCompute: AWS Batch environments that scale to zero, a queue, job definitions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import defaults
from infra.components.identity import service_role
from infra.components.tracking import TrackingClient
from infra.planning import iam
from infra.planning.k8s import MLFLOW_PORT
from infra.planning.pipeline import retry_strategy
from infra.planning.tags import resource_tags
from training_jobs import contract


@dataclass(frozen=True)
class TrainingComputeArgs:
    base_name: str
    tags: dict[str, str]
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    kms_key_arn: pulumi.Input[str]
    bucket_names: dict[str, pulumi.Output[str]]
    bucket_arns: dict[str, pulumi.Output[str]]
    # The jobs image every definition runs, by digest (`<repository>@sha256:...`).
    image: pulumi.Input[str]
    # The ECR repository the execution role may pull from (None: a registry without IAM).
    jobs_repository_arn: pulumi.Input[str] | None
    region: str
    instance_types: tuple[str, ...]
    max_vcpus: int
    spot: bool
    on_demand_fallback: bool
    job_vcpus: float
    job_memory_mib: int
    job_timeout_minutes: int
    job_attempts: int
    log_retention_days: int
    # Set for ephemeral stacks: queue onto these instead of creating environments.
    shared_compute_environment_arns: pulumi.Input[list[str]] | None
    # The MLflow server the jobs log to, and their credentials for it.
    tracking: TrackingClient | None
    # The registered model and experiment the jobs work on (per stack).
    model_name: str
    # The VPC's range: MLflow's internal load balancer is in it.
    vpc_cidr: str


def _container_properties(
    job: str, args: TrainingComputeArgs, env_names: list[str]
) -> Callable[[dict[str, Any]], str]:
    """Batch container properties of one job module, from the resolved role/image values."""

    def render(a: dict[str, Any]) -> str:
        environment = [{"name": k, "value": a[k]} for k in env_names]
        environment.append({"name": "AWS_REGION", "value": args.region})
        # Injected by the ECS agent at start (execution role), never in the definition.
        secrets = (
            [{"name": "MLFLOW_TRACKING_PASSWORD", "valueFrom": a["tracking_secret"]}]
            if "tracking_secret" in a
            else []
        )
        return json.dumps(
            {
                "secrets": secrets,
                "image": a["image"],
                "command": ["python", "-m", f"training_jobs.{job}"],
                "jobRoleArn": a["job_role"],
                "executionRoleArn": a["execution_role"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": f"{args.job_vcpus:g}"},
                    {"type": "MEMORY", "value": str(args.job_memory_mib)},
                ],
                "environment": sorted(environment, key=lambda e: e["name"]),
                "privileged": False,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": a["log_group"],
                        "awslogs-region": args.region,
                        "awslogs-stream-prefix": job,
                    },
                },
            },
            sort_keys=True,
        )

    return render


class TrainingCompute(pulumi.ComponentResource):
    job_queue_arn: pulumi.Output[str]
    job_definition_arns: dict[str, pulumi.Output[str]]
    log_group_name: pulumi.Output[str]
    compute_environment_arns: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: TrainingComputeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:training:TrainingCompute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = f"{args.base_name}-training"

        def tags(name: str) -> dict[str, str]:
            return resource_tags(name, args.tags)

        log_group = aws.cloudwatch.LogGroup(
            f"{base}-logs",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags(f"{base}-logs"),
            opts=child,
        )

        if args.shared_compute_environment_arns is not None:
            # Ephemeral stacks queue onto the base stack's environments: nothing to boot.
            environment_arns: pulumi.Input[list[str]] = args.shared_compute_environment_arns
        else:
            environment_arns = self._own_compute(base, args)
        queue = aws.batch.JobQueue(
            f"{base}-queue",
            state="ENABLED",
            priority=1,
            compute_environment_orders=pulumi.Output.from_input(environment_arns).apply(
                lambda arns: [
                    aws.batch.JobQueueComputeEnvironmentOrderArgs(compute_environment=arn, order=i)
                    for i, arn in enumerate(arns, start=1)
                ]
            ),
            tags=tags(f"{base}-queue"),
            opts=child,
        )
        self.compute_environment_arns = pulumi.Output.from_input(environment_arns)

        job_role = service_role(
            f"{base}-job",
            service="ecs-tasks.amazonaws.com",
            policy=pulumi.Output.all(
                args.kms_key_arn, log_group.arn, *args.bucket_arns.values()
            ).apply(
                lambda a: json.dumps(
                    iam.job_role_policy(
                        kms_key_arn=a[0],
                        log_group_arn=a[1],
                        bucket_arns=list(a[2:]),
                        metric_namespace=contract.DRIFT_METRIC_NAMESPACE,
                    )
                )
            ),
            parent=self,
            tags=args.tags,
        )
        repository_arns = [args.jobs_repository_arn] if args.jobs_repository_arn else []
        tracking = args.tracking
        secret_arns: list[pulumi.Input[str]] = [tracking.secret_arn] if tracking else []
        secret_keys: list[pulumi.Input[str]] = [tracking.secret_key_arn] if tracking else []
        execution_role = service_role(
            f"{base}-execution",
            service="ecs-tasks.amazonaws.com",
            policy=pulumi.Output.all(
                log_group.arn,
                pulumi.Output.all(*repository_arns),
                pulumi.Output.all(*secret_arns),
                pulumi.Output.all(*secret_keys),
            ).apply(
                lambda a: json.dumps(
                    iam.execution_role_policy(
                        log_group_arn=a[0],
                        repository_arns=list(a[1]),
                        secret_arns=list(a[2]),
                        secret_key_arns=list(a[3]),
                    )
                )
            ),
            parent=self,
            tags=args.tags,
        )

        job_env: dict[str, pulumi.Input[str]] = {
            contract.bucket_variable(role): args.bucket_names[role]
            for role in contract.DATA_BUCKET_ROLES
        }
        # MLflow's usage reporting would reach for the internet from private subnets.
        job_env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        job_env[contract.VAR_MODEL_NAME] = args.model_name
        job_env[contract.VAR_EXPERIMENT] = args.model_name
        extra: dict[str, pulumi.Input[str]] = {}
        if tracking is not None:
            job_env[contract.VAR_TRACKING_URI] = tracking.uri
            job_env["MLFLOW_TRACKING_USERNAME"] = tracking.username
            extra["tracking_secret"] = tracking.secret_arn
        definitions: dict[str, pulumi.Output[str]] = {}
        for job in contract.BATCH_JOBS:
            definition_name = f"{base}-{job}"
            container = pulumi.Output.all(
                image=args.image,
                job_role=job_role.arn,
                execution_role=execution_role.arn,
                log_group=log_group.name,
                **extra,
                **job_env,
            ).apply(_container_properties(job, args, sorted(job_env)))
            definition = aws.batch.JobDefinition(
                definition_name,
                type="container",
                platform_capabilities=["EC2"],
                container_properties=container,
                retry_strategy=aws.batch.JobDefinitionRetryStrategyArgs(
                    attempts=args.job_attempts,
                    evaluate_on_exits=[
                        aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgs(
                            action=rule["action"],
                            on_status_reason=rule.get("onStatusReason"),
                            on_reason=rule.get("onReason"),
                        )
                        for rule in retry_strategy(args.job_attempts)["evaluateOnExit"]
                    ],
                ),
                timeout=aws.batch.JobDefinitionTimeoutArgs(
                    attempt_duration_seconds=args.job_timeout_minutes * 60
                ),
                propagate_tags=True,
                tags=tags(definition_name),
                opts=child,
            )
            definitions[job] = definition.arn

        self.job_queue_arn = queue.arn
        self.job_definition_arns = definitions
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "job_queue_arn": queue.arn,
                "job_definition_arns": definitions,
                "log_group": log_group.name,
            }
        )

    def _own_compute(self, base: str, args: TrainingComputeArgs) -> pulumi.Output[list[str]]:
        """Managed environments that scale to zero; their ARNs in queue order."""
        child = pulumi.ResourceOptions(parent=self)

        def tags(name: str) -> dict[str, str]:
            return resource_tags(name, args.tags)

        # Instances only talk out (ECR, S3, CloudWatch over HTTPS; MLflow inside the VPC);
        # nothing talks in.
        egress = [
            aws.ec2.SecurityGroupEgressArgs(
                description="HTTPS to AWS APIs and the image registry",
                protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_blocks=["0.0.0.0/0"],
            )
        ]
        if args.tracking is not None:
            egress.append(
                aws.ec2.SecurityGroupEgressArgs(
                    description="MLflow through its internal load balancer",
                    protocol="tcp",
                    from_port=MLFLOW_PORT,
                    to_port=MLFLOW_PORT,
                    cidr_blocks=[args.vpc_cidr],
                )
            )
        security_group = aws.ec2.SecurityGroup(
            f"{base}-sg",
            description="Batch job instances: HTTPS out, and MLflow inside the VPC",
            vpc_id=args.vpc_id,
            egress=egress,
            tags=tags(f"{base}-sg"),
            opts=child,
        )

        instance_role = aws.iam.Role(
            f"{base}-instance-role",
            assume_role_policy=json.dumps(iam.assume_role_policy("ec2.amazonaws.com")),
            tags=tags(f"{base}-instance-role"),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{base}-instance-ecs",
            role=instance_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
            opts=child,
        )
        instance_profile = aws.iam.InstanceProfile(
            f"{base}-instance-profile",
            role=instance_role.name,
            tags=tags(f"{base}-instance-profile"),
            opts=child,
        )

        launch_template = defaults.hardened_launch_template(
            f"{base}-lt",
            volume_size_gib=50,
            tags=tags(f"{base}-lt"),
            opts=child,
        )

        def environment(
            suffix: str, kind: str, instance_types: tuple[str, ...], max_vcpus: int
        ) -> aws.batch.ComputeEnvironment:
            ce_name = f"{base}-{suffix}"
            return aws.batch.ComputeEnvironment(
                ce_name,
                type="MANAGED",
                compute_resources=aws.batch.ComputeEnvironmentComputeResourcesArgs(
                    type=kind,
                    allocation_strategy=(
                        "SPOT_PRICE_CAPACITY_OPTIMIZED"
                        if kind == "SPOT"
                        else "BEST_FIT_PROGRESSIVE"
                    ),
                    # Scale to zero: no job, no instance, no bill.
                    min_vcpus=0,
                    max_vcpus=max_vcpus,
                    instance_types=list(instance_types),
                    subnets=args.subnet_ids,
                    security_group_ids=[security_group.id],
                    instance_role=instance_profile.arn,
                    launch_template=aws.batch.ComputeEnvironmentComputeResourcesLaunchTemplateArgs(
                        launch_template_id=launch_template.id, version="$Latest"
                    ),
                    tags=tags(ce_name),
                ),
                tags=tags(ce_name),
                opts=child,
            )

        primary_kind = "SPOT" if args.spot else "EC2"
        primary = environment("cpu", primary_kind, args.instance_types, args.max_vcpus)
        arns = [primary.arn]
        if args.spot and args.on_demand_fallback:
            arns.append(environment("cpu-ondemand", "EC2", args.instance_types, args.max_vcpus).arn)
        return pulumi.Output.all(*arns)
