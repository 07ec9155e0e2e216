"""Pipeline: the retrain state machine, its schedule, and the drift alarm → retrain rule."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.identity import service_role
from infra.planning import iam
from infra.planning.pipeline import (
    alarm_state_change_pattern,
    decision_keys_pattern,
    state_machine_definition,
)
from infra.planning.tags import resource_tags
from training_jobs import contract


@dataclass(frozen=True)
class PipelineArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    account_id: pulumi.Input[str]
    job_queue_arn: pulumi.Input[str]
    job_definition_arns: dict[str, pulumi.Output[str]]
    models_bucket_name: pulumi.Input[str]
    models_bucket_arn: pulumi.Input[str]
    model_name: str
    kms_key_arn: pulumi.Input[str]
    alert_topic_arn: pulumi.Input[str]
    drift_alarm_arn: pulumi.Input[str]
    schedule: str | None
    # When the drift job runs (it publishes MaxDriftScore, which the drift alarm watches).
    drift_schedule: str | None
    log_retention_days: int


class Pipeline(pulumi.ComponentResource):
    state_machine_arn: pulumi.Output[str]
    retrain_rule_name: pulumi.Output[str]
    drift_schedule_name: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: PipelineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:pipeline:Pipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = f"{args.base_name}-retrain"

        def tags(name: str) -> dict[str, str]:
            return resource_tags(name, args.tags)

        definitions = [args.job_definition_arns[job] for job in contract.PIPELINE_JOBS]
        role = service_role(
            base,
            service="states.amazonaws.com",
            policy=pulumi.Output.all(
                args.account_id,
                args.job_queue_arn,
                args.models_bucket_arn,
                args.kms_key_arn,
                args.alert_topic_arn,
                *definitions,
            ).apply(
                lambda a: json.dumps(
                    iam.pipeline_role_policy(
                        region=args.region,
                        account_id=a[0],
                        job_queue_arns=[a[1]],
                        job_definition_arns=list(a[5:]),
                        decisions_object_arn=f"{a[2]}/{decision_keys_pattern(args.model_name)}",
                        kms_key_arn=a[3],
                        alert_topic_arn=a[4],
                    )
                )
            ),
            parent=self,
            tags=args.tags,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{base}-logs",
            # Step Functions needs the /aws/vendedlogs/ prefix to avoid resource-policy limits.
            name=f"/aws/vendedlogs/states/{base}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags(f"{base}-logs"),
            opts=child,
        )
        definition = pulumi.Output.all(
            args.job_queue_arn,
            args.models_bucket_name,
            args.alert_topic_arn,
            *[args.job_definition_arns[job] for job in contract.PIPELINE_JOBS],
        ).apply(
            lambda a: json.dumps(
                state_machine_definition(
                    job_queue_arn=a[0],
                    models_bucket=a[1],
                    alert_topic_arn=a[2],
                    model_name=args.model_name,
                    job_definition_arns=dict(zip(contract.PIPELINE_JOBS, a[3:], strict=True)),
                ),
                sort_keys=True,
            )
        )
        machine = aws.sfn.StateMachine(
            base,
            role_arn=role.arn,
            definition=definition,
            type="STANDARD",
            logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                level="ERROR",
                include_execution_data=False,
                log_destination=log_group.arn.apply(lambda arn: f"{arn}:*"),
            ),
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(enabled=True),
            tags=tags(base),
            opts=child,
        )

        events_role = service_role(
            f"{base}-events",
            service="events.amazonaws.com",
            policy=machine.arn.apply(lambda arn: json.dumps(iam.start_execution_policy(arn))),
            parent=self,
            tags=args.tags,
        )

        triggers: dict[str, aws.cloudwatch.EventRule] = {
            "drift": aws.cloudwatch.EventRule(
                f"{base}-on-drift",
                description="Retrain when the drift alarm enters ALARM",
                event_pattern=pulumi.Output.from_input(args.drift_alarm_arn).apply(
                    lambda arn: json.dumps(alarm_state_change_pattern(arn))
                ),
                tags=tags(f"{base}-on-drift"),
                opts=child,
            )
        }
        if args.schedule:
            triggers["schedule"] = aws.cloudwatch.EventRule(
                f"{base}-schedule",
                description="Scheduled retrain",
                schedule_expression=args.schedule,
                tags=tags(f"{base}-schedule"),
                opts=child,
            )
        for trigger, rule in triggers.items():
            aws.cloudwatch.EventTarget(
                f"{base}-{trigger}-target",
                rule=rule.name,
                arn=machine.arn,
                role_arn=events_role.arn,
                opts=child,
            )

        self.drift_schedule_name = None
        if args.drift_schedule:
            self.drift_schedule_name = self._drift_schedule(base, args)

        self.state_machine_arn = machine.arn
        self.retrain_rule_name = triggers["drift"].name
        self.register_outputs({"state_machine_arn": machine.arn})

    def _drift_schedule(self, base: str, args: PipelineArgs) -> pulumi.Output[str]:
        """EventBridge Scheduler submits the drift job: without it no drift metric is ever
        published, the drift alarm never fires and the retrain loop never closes."""
        definition = args.job_definition_arns[contract.JOB_DRIFT]
        role = service_role(
            f"{base}-drift-scheduler",
            service="scheduler.amazonaws.com",
            policy=pulumi.Output.all(args.job_queue_arn, definition).apply(
                lambda a: json.dumps(
                    iam.submit_job_policy(job_queue_arn=a[0], job_definition_arn=a[1])
                )
            ),
            parent=self,
            tags=args.tags,
        )
        schedule = aws.scheduler.Schedule(
            f"{base}-drift-schedule",
            description="Run the drift job on the champion's captured traffic",
            schedule_expression=args.drift_schedule,
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            target=aws.scheduler.ScheduleTargetArgs(
                # Batch has no templated target: the universal one calls SubmitJob.
                arn="arn:aws:scheduler:::aws-sdk:batch:submitJob",
                role_arn=role.arn,
                input=pulumi.Output.all(args.job_queue_arn, definition).apply(
                    lambda a: json.dumps(
                        {
                            "JobName": f"{base}-{contract.JOB_DRIFT}",
                            "JobQueue": a[0],
                            "JobDefinition": a[1],
                        },
                        sort_keys=True,
                    )
                ),
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_retry_attempts=3, maximum_event_age_in_seconds=3600
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return schedule.name
