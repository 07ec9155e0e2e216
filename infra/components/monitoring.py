"""Monitoring, in two components: the AWS half (CloudWatch alarms with drift → retrain,
the dashboard and the budget) and, on the platform's EKS cluster, the cluster half
(kube-prometheus-stack, the model server's ServiceMonitor and rules, Grafana dashboards)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.components.identity import ServiceAccountRef, pod_identity_role
from infra.planning import iam
from infra.planning import k8s as manifests
from infra.planning import monitoring as plans
from infra.planning.pipeline import drift_alarm_name
from infra.planning.tags import resource_tags
from training_jobs import contract

# Both halves were one component once: the cluster half keeps its type token, so the URNs
# of its children (the Helm release, the namespace holding Prometheus' volume) stay those
# they had and splitting it off replaces nothing.
TYPE_TOKEN = "mlops:monitoring:Monitoring"
MONITORING_NAMESPACE = "monitoring"
CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
PREDICTION_SHIFT_THRESHOLD = 0.15


@dataclass(frozen=True)
class MonitoringArgs:
    base_name: str
    stack: str
    tags: dict[str, str]
    region: str
    model_name: str
    alert_topic_arn: pulumi.Input[str]
    drift_threshold: float
    state_machine_arn: pulumi.Input[str]
    job_queue_arn: pulumi.Input[str]
    budget_monthly_usd: float
    budget_alert_thresholds_pct: tuple[int, ...]
    dashboard: bool


@dataclass(frozen=True)
class ClusterMonitoringArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    model_name: str
    provider: k8s.Provider
    cluster_name: pulumi.Input[str]
    alert_topic_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    # The model server's namespace: its ServiceMonitor and rules live there.
    server_namespace: str
    server_namespace_resource: k8s.core.v1.Namespace
    server_name: str
    chart_version: str
    retention: str
    storage_gib: int
    cpu: str
    memory: str
    latency_slo_p99_seconds: float
    error_ratio_threshold: float


class Monitoring(pulumi.ComponentResource):
    drift_alarm_arn: pulumi.Output[str]
    drift_alarm_name: str

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = args.base_name

        def tags(name: str) -> dict[str, str]:
            return resource_tags(name, args.tags)

        alarm_name = drift_alarm_name(base)
        drift_alarm = aws.cloudwatch.MetricAlarm(
            f"{base}-drift-alarm",
            # A fixed name: the retrain rule matches on it (see Pipeline).
            name=alarm_name,
            alarm_description="Feature drift of the champion's traffic at or above threshold; "
            "EventBridge starts the retrain pipeline on ALARM.",
            namespace=contract.DRIFT_METRIC_NAMESPACE,
            metric_name=contract.DRIFT_METRIC_MAX,
            dimensions={contract.DRIFT_DIMENSION_MODEL: args.model_name},
            statistic="Maximum",
            period=3600,
            evaluation_periods=1,
            threshold=args.drift_threshold,
            comparison_operator="GreaterThanOrEqualToThreshold",
            # No drift run in a period is not evidence of drift.
            treat_missing_data="notBreaching",
            alarm_actions=[args.alert_topic_arn],
            ok_actions=[args.alert_topic_arn],
            tags=tags(f"{base}-drift-alarm"),
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{base}-retrain-failed-alarm",
            alarm_description="The retrain pipeline failed.",
            namespace="AWS/States",
            metric_name="ExecutionsFailed",
            dimensions={"StateMachineArn": args.state_machine_arn},
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[args.alert_topic_arn],
            tags=tags(f"{base}-retrain-failed-alarm"),
            opts=child,
        )
        # Batch publishes no failure metric; its state-change events are the signal.
        rule = aws.cloudwatch.EventRule(
            f"{base}-batch-failed",
            description="A platform Batch job failed",
            event_pattern=pulumi.Output.from_input(args.job_queue_arn).apply(
                lambda queue: json.dumps(
                    {
                        "source": ["aws.batch"],
                        "detail-type": ["Batch Job State Change"],
                        "detail": {"status": ["FAILED"], "jobQueue": [queue]},
                    }
                )
            ),
            tags=tags(f"{base}-batch-failed"),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{base}-batch-failed-target",
            rule=rule.name,
            arn=args.alert_topic_arn,
            opts=child,
        )

        if args.dashboard:
            self._dashboard(base, args)
        aws.budgets.Budget(
            f"{base}-budget",
            budget_type="COST",
            limit_amount=f"{args.budget_monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            # Needs `mlops:stack` activated as a cost allocation tag in the billing console.
            cost_filters=[
                aws.budgets.BudgetCostFilterArgs(
                    name="TagKeyValue", values=[f"user:{contract.TAG_STACK}${args.stack}"]
                )
            ],
            notifications=[
                aws.budgets.BudgetNotificationArgs(
                    comparison_operator="GREATER_THAN",
                    notification_type=kind,
                    threshold=pct,
                    threshold_type="PERCENTAGE",
                    subscriber_sns_topic_arns=[args.alert_topic_arn],
                )
                for pct in args.budget_alert_thresholds_pct
                for kind in ("ACTUAL", "FORECASTED")
            ],
            tags=tags(f"{base}-budget"),
            opts=child,
        )

        self.drift_alarm_arn = drift_alarm.arn
        self.drift_alarm_name = alarm_name
        self.register_outputs({"drift_alarm_arn": drift_alarm.arn})

    def _dashboard(self, base: str, args: MonitoringArgs) -> None:
        aws.cloudwatch.Dashboard(
            f"{base}-dashboard",
            dashboard_name=f"{base}-mlops",
            dashboard_body=pulumi.Output.from_input(args.state_machine_arn).apply(
                lambda arn: json.dumps(
                    plans.cloudwatch_dashboard(
                        region=args.region,
                        model_name=args.model_name,
                        state_machine_arn=arn,
                        drift_threshold=args.drift_threshold,
                    ),
                    sort_keys=True,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


class ClusterMonitoring(pulumi.ComponentResource):
    """kube-prometheus-stack on the platform's cluster, with the model server's
    ServiceMonitor, its rules and the Grafana dashboards."""

    def __init__(
        self, name: str, args: ClusterMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        base = args.base_name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        namespace = k8s.core.v1.Namespace(
            f"{base}-ns-{MONITORING_NAMESPACE}",
            metadata={"name": MONITORING_NAMESPACE},
            opts=k8s_opts,
        )
        pod_identity_role(
            f"{base}-grafana",
            parent=self,
            tags=args.tags,
            policy=json.dumps(iam.cloudwatch_read_policy()),
            bind_to=ServiceAccountRef(
                args.cluster_name, MONITORING_NAMESPACE, plans.GRAFANA_SERVICE_ACCOUNT
            ),
        )
        pod_identity_role(
            f"{base}-alertmanager",
            parent=self,
            tags=args.tags,
            policy=pulumi.Output.all(args.alert_topic_arn, args.kms_key_arn).apply(
                lambda a: json.dumps(iam.publish_alerts_policy(topic_arn=a[0], kms_key_arn=a[1]))
            ),
            bind_to=ServiceAccountRef(
                args.cluster_name, MONITORING_NAMESPACE, plans.ALERTMANAGER_SERVICE_ACCOUNT
            ),
        )
        grafana_password = random.RandomPassword(
            f"{base}-grafana-admin-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        grafana_secret = k8s.core.v1.Secret(
            f"{base}-grafana-admin",
            metadata={"name": plans.GRAFANA_ADMIN_SECRET, "namespace": MONITORING_NAMESPACE},
            string_data={"admin-user": "admin", "admin-password": grafana_password.result},
            type="Opaque",
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[namespace]
            ),
        )
        release = k8s.helm.v3.Release(
            f"{base}-kube-prometheus-stack",
            name="kube-prometheus-stack",
            chart="kube-prometheus-stack",
            version=args.chart_version,
            namespace=MONITORING_NAMESPACE,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            values=pulumi.Output.from_input(args.alert_topic_arn).apply(
                lambda topic: plans.helm_values(
                    retention=args.retention,
                    storage_gib=args.storage_gib,
                    cpu=args.cpu,
                    memory=args.memory,
                    grafana_role_region=args.region,
                    alert_topic_arn=topic,
                )
            ),
            # CRDs (ServiceMonitor, PrometheusRule) must exist before objects that use them.
            skip_crds=False,
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[namespace, grafana_secret]
            ),
        )
        # The custom resources need the chart's CRDs and the namespace they live in.
        crd_opts = pulumi.ResourceOptions(
            parent=self,
            provider=args.provider,
            depends_on=[release, args.server_namespace_resource],
        )
        server_labels = manifests.labels(args.server_name, "model-server")
        k8s.apiextensions.CustomResource(
            f"{base}-model-server-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": args.server_name, "namespace": args.server_namespace},
            spec={
                "selector": {"matchLabels": server_labels},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
            opts=crd_opts,
        )
        k8s.apiextensions.CustomResource(
            f"{base}-model-server-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "mlops-model-server", "namespace": args.server_namespace},
            spec=plans.prometheus_rules(
                namespace=args.server_namespace,
                latency_slo_p99_seconds=args.latency_slo_p99_seconds,
                error_ratio_threshold=args.error_ratio_threshold,
                prediction_shift_threshold=PREDICTION_SHIFT_THRESHOLD,
            ),
            opts=crd_opts,
        )
        for key, dashboard in (
            ("model-server", plans.server_dashboard(args.server_namespace)),
            ("drift", plans.drift_dashboard(args.model_name, args.region)),
        ):
            k8s.core.v1.ConfigMap(
                f"{base}-dashboard-{key}",
                metadata={
                    "name": f"mlops-dashboard-{key}",
                    "namespace": MONITORING_NAMESPACE,
                    "labels": {plans.GRAFANA_DASHBOARD_LABEL: "1"},
                },
                data={f"{key}.json": json.dumps(dashboard, sort_keys=True)},
                opts=pulumi.ResourceOptions(
                    parent=self, provider=args.provider, depends_on=[namespace]
                ),
            )
        self.register_outputs({})
