"""Alerts: the SNS topic every alarm and pipeline failure publishes to."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.planning import iam
from infra.planning.tags import resource_tags


@dataclass(frozen=True)
class AlertsArgs:
    base_name: str
    tags: dict[str, str]
    kms_key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    emails: tuple[str, ...]


class Alerts(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:monitoring:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic_name = f"{args.base_name}-alerts"
        topic = aws.sns.Topic(
            topic_name,
            kms_master_key_id=args.kms_key_arn,
            tags=resource_tags(topic_name, args.tags),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{topic_name}-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, args.account_id).apply(
                lambda a: json.dumps(iam.alert_topic_policy(topic_arn=a[0], account_id=a[1]))
            ),
            opts=child,
        )
        for i, address in enumerate(args.emails):
            # Each address must confirm the subscription from the e-mail AWS sends.
            aws.sns.TopicSubscription(
                f"{topic_name}-email-{i}",
                topic=topic.arn,
                protocol="email",
                endpoint=address,
                opts=child,
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": topic.arn})
