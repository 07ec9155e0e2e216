"""Monitoring as data: Prometheus rules, Grafana and CloudWatch dashboards, Helm values.

Metric names come from `training_jobs.contract`, the same constants the model server and
the drift job publish under, so an alert can never watch a metric nobody writes.
"""

from __future__ import annotations

from typing import Any

from training_jobs import contract

GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
_REQ = f"{contract.SERVE_METRIC_REQUESTS}_total"
_LAT = f"{contract.SERVE_METRIC_LATENCY}_bucket"
_PRED = contract.SERVE_METRIC_PREDICTION


def prometheus_rules(
    *,
    namespace: str,
    latency_slo_p99_seconds: float,
    error_ratio_threshold: float,
    prediction_shift_threshold: float,
) -> dict[str, Any]:
    """PrometheusRule spec: latency SLO, error ratio, no traffic, prediction drift."""
    selector = f'namespace="{namespace}", route="/invocations"'
    return {
        "groups": [
            {
                "name": "mlops-model-server",
                "rules": [
                    {
                        "alert": "ModelServerLatencySLO",
                        "expr": (
                            "histogram_quantile(0.99, sum by (le) "
                            f"(rate({_LAT}{{{selector}}}[5m]))) > {latency_slo_p99_seconds}"
                        ),
                        "for": "10m",
                        "labels": {"severity": "page"},
                        "annotations": {
                            "summary": f"p99 prediction latency above {latency_slo_p99_seconds}s",
                        },
                    },
                    {
                        "alert": "ModelServerErrorRatio",
                        "expr": (
                            f'sum(rate({_REQ}{{{selector}, status=~"5.."}}[5m]))'
                            f" / sum(rate({_REQ}{{{selector}}}[5m])) > {error_ratio_threshold}"
                        ),
                        "for": "5m",
                        "labels": {"severity": "page"},
                        "annotations": {"summary": "model server answers too many 5xx"},
                    },
                    {
                        "alert": "ModelServerNoTraffic",
                        "expr": f"sum(rate({_REQ}{{{selector}}}[15m])) == 0",
                        "for": "30m",
                        "labels": {"severity": "ticket"},
                        "annotations": {"summary": "no prediction requests for 30 minutes"},
                    },
                    {
                        # Feature drift is computed by the drift job and alarmed in CloudWatch
                        # (which starts retraining); this watches the output distribution
                        # continuously between drift runs.
                        "alert": "ModelPredictionDrift",
                        "expr": (
                            f'abs(sum(rate({_PRED}_sum{{namespace="{namespace}"}}[1h]))'
                            f' / sum(rate({_PRED}_count{{namespace="{namespace}"}}[1h]))'
                            f' - sum(rate({_PRED}_sum{{namespace="{namespace}"}}[1h] offset 1d))'
                            f' / sum(rate({_PRED}_count{{namespace="{namespace}"}}[1h] offset 1d)))'
                            f" > {prediction_shift_threshold}"
                        ),
                        "for": "1h",
                        "labels": {"severity": "ticket"},
                        "annotations": {
                            "summary": "mean prediction moved more than "
                            f"{prediction_shift_threshold} against the same hour yesterday",
                        },
                    },
                ],
            }
        ]
    }


def _panel(
    title: str, expr: str, unit: str, x: int, y: int, datasource: str = "prometheus"
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": {"type": datasource, "uid": datasource},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"expr": expr, "refId": "A"}],
    }


def server_dashboard(namespace: str) -> dict[str, Any]:
    """Grafana: request rate, errors and latency of the model server."""
    sel = f'namespace="{namespace}"'
    rate = f"sum by (status) (rate({_REQ}{{{sel}}}[5m]))"
    errors = f'sum(rate({_REQ}{{{sel}, status=~"5.."}}[5m])) / sum(rate({_REQ}{{{sel}}}[5m]))'
    p99 = f"histogram_quantile(0.99, sum by (le) (rate({_LAT}{{{sel}}}[5m])))"
    version = f"max by (model) ({contract.SERVE_METRIC_MODEL_VERSION}{{{sel}}})"
    return {
        "uid": "mlops-model-server",
        "title": "MLOps / Model server",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "panels": [
            _panel("Requests per second by status", rate, "reqps", 0, 0),
            _panel("Error ratio (5xx)", errors, "percentunit", 12, 0),
            _panel("Latency p99", p99, "s", 0, 8),
            _panel("Model version served", version, "none", 12, 8),
        ],
    }


def drift_dashboard(model_name: str, region: str) -> dict[str, Any]:
    """Grafana (CloudWatch datasource): drift per feature over time, as the job publishes it."""

    def cloudwatch_panel(
        title: str, metric: str, dimensions: dict[str, str], y: int
    ) -> dict[str, Any]:
        return {
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "cloudwatch", "uid": "cloudwatch"},
            "gridPos": {"h": 9, "w": 24, "x": 0, "y": y},
            "targets": [
                {
                    "refId": "A",
                    "region": region,
                    "namespace": contract.DRIFT_METRIC_NAMESPACE,
                    "metricName": metric,
                    "dimensions": dimensions,
                    "statistic": "Maximum",
                    "matchExact": False,
                }
            ],
        }

    model = {contract.DRIFT_DIMENSION_MODEL: model_name}
    return {
        "uid": "mlops-drift",
        "title": "MLOps / Drift",
        "schemaVersion": 39,
        "time": {"from": "now-7d", "to": "now"},
        "panels": [
            cloudwatch_panel("Max drift score", contract.DRIFT_METRIC_MAX, model, 0),
            cloudwatch_panel(
                "Drift score per feature",
                contract.DRIFT_METRIC_FEATURE,
                {**model, contract.DRIFT_DIMENSION_FEATURE: "*"},
                9,
            ),
        ],
    }


def cloudwatch_dashboard(
    *, region: str, model_name: str, state_machine_arn: str, drift_threshold: float
) -> dict[str, Any]:
    """CloudWatch: drift (with the alarm line), retrain pipeline executions."""
    return {
        "widgets": [
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Max drift score",
                    "region": region,
                    "metrics": [
                        [
                            contract.DRIFT_METRIC_NAMESPACE,
                            contract.DRIFT_METRIC_MAX,
                            contract.DRIFT_DIMENSION_MODEL,
                            model_name,
                        ]
                    ],
                    "stat": "Maximum",
                    "period": 3600,
                    "annotations": {"horizontal": [{"label": "alarm", "value": drift_threshold}]},
                },
            },
            {
                "type": "metric",
                "x": 12,
                "y": 0,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Retrain pipeline executions",
                    "region": region,
                    "metrics": [
                        ["AWS/States", m, "StateMachineArn", state_machine_arn]
                        for m in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed")
                    ],
                    "stat": "Sum",
                    "period": 3600,
                },
            },
        ]
    }


GRAFANA_ADMIN_SECRET = "grafana-admin"
ALERTMANAGER_SERVICE_ACCOUNT = "alertmanager"
GRAFANA_SERVICE_ACCOUNT = "grafana"
ALERT_RECEIVER = "platform-alerts"


def alertmanager_config(*, topic_arn: str, region: str) -> dict[str, Any]:
    """Every alert to the platform's SNS topic; only the chart's always-firing Watchdog
    (a dead man's switch for an external pager) and InfoInhibitor go nowhere."""
    return {
        "route": {
            "receiver": ALERT_RECEIVER,
            "group_by": ["alertname", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{"receiver": "null", "matchers": ['alertname =~ "Watchdog|InfoInhibitor"']}],
        },
        "receivers": [
            {"name": "null"},
            {
                "name": ALERT_RECEIVER,
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        # Signed with the pod identity of the alertmanager service account.
                        "sigv4": {"region": region},
                        "subject": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                    }
                ],
            },
        ],
    }


def helm_values(
    *,
    retention: str,
    storage_gib: int,
    cpu: str,
    memory: str,
    grafana_role_region: str,
    alert_topic_arn: str,
) -> dict[str, Any]:
    """kube-prometheus-stack values: pick up our ServiceMonitors/rules/dashboards anywhere,
    alert to the platform's topic, and take Grafana's admin password from a Secret."""
    return {
        "prometheus": {
            "prometheusSpec": {
                "retention": retention,
                "resources": {
                    "requests": {"cpu": cpu, "memory": memory},
                    "limits": {"memory": memory},
                },
                # Select ServiceMonitors and rules from every namespace, not only the chart's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": "gp3",
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
                        }
                    }
                },
            }
        },
        "grafana": {
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": GRAFANA_DASHBOARD_LABEL,
                    "searchNamespace": "ALL",
                }
            },
            "serviceAccount": {"name": GRAFANA_SERVICE_ACCOUNT},
            # Not the chart's well-known default password: a generated one (a Pulumi secret).
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "additionalDataSources": [
                {
                    "name": "CloudWatch",
                    "uid": "cloudwatch",
                    "type": "cloudwatch",
                    # Credentials come from EKS Pod Identity on the grafana service account.
                    "jsonData": {"authType": "default", "defaultRegion": grafana_role_region},
                }
            ],
        },
        "alertmanager": {
            "enabled": True,
            "serviceAccount": {"create": True, "name": ALERTMANAGER_SERVICE_ACCOUNT},
            "config": alertmanager_config(topic_arn=alert_topic_arn, region=grafana_role_region),
        },
    }
