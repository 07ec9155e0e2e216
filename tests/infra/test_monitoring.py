"""Monitoring under the mocks: alarms watch what the jobs publish; rules and dashboards parse."""

from __future__ import annotations

import json

import yaml

from infra.planning.monitoring import prometheus_rules
from mlops.k8s_export import kubernetes_objects
from mlops.plan import Plan
from tests.infra.conftest import plan_for
from training_jobs import contract


def test_drift_alarm_watches_the_metric_the_drift_job_publishes(dev_plan: Plan) -> None:
    alarms = {a.name: a for a in dev_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    drift = alarms["mlops-dev-drift-alarm"].inputs
    assert drift["namespace"] == contract.DRIFT_METRIC_NAMESPACE
    assert drift["metricName"] == contract.DRIFT_METRIC_MAX
    assert drift["dimensions"] == {contract.DRIFT_DIMENSION_MODEL: "churn"}
    assert drift["threshold"] == contract.DRIFT_THRESHOLD_DEFAULT
    assert drift["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert drift["treatMissingData"] == "notBreaching"
    assert drift["alarmActions"] == [dev_plan.outputs["alert_topic_arn"]]
    assert dev_plan.outputs["drift_alarm_name"] == drift["name"] == "mlops-dev-drift"


def test_retrain_rule_listens_to_the_drift_alarm(dev_plan: Plan) -> None:
    rule = next(
        r
        for r in dev_plan.of_type("aws:cloudwatch/eventRule:EventRule")
        if r.name.endswith("on-drift")
    )
    pattern = json.loads(rule.inputs["eventPattern"])
    (alarm_arn,) = pattern["resources"]
    assert alarm_arn.endswith(f":alarm:{dev_plan.outputs['drift_alarm_name']}")
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}


def test_pipeline_and_batch_failures_alert(dev_plan: Plan) -> None:
    alarms = {a.name: a for a in dev_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    failed = alarms["mlops-dev-retrain-failed-alarm"].inputs
    assert (failed["namespace"], failed["metricName"]) == ("AWS/States", "ExecutionsFailed")
    assert failed["dimensions"]["StateMachineArn"] == dev_plan.outputs["state_machine_arn"]
    rule = next(
        r
        for r in dev_plan.of_type("aws:cloudwatch/eventRule:EventRule")
        if r.name.endswith("batch-failed")
    )
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"] == {
        "status": ["FAILED"],
        "jobQueue": [dev_plan.outputs["job_queue_arn"]],
    }
    targets = [
        t
        for t in dev_plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.inputs["rule"] == rule.inputs["name"]
    ]
    assert [t.inputs["arn"] for t in targets] == [dev_plan.outputs["alert_topic_arn"]]


def test_budget_thresholds_come_from_config() -> None:
    plan = plan_for("prod")
    (budget,) = plan.of_type("aws:budgets/budget:Budget")
    assert budget.inputs["limitAmount"] == "8000.00" and budget.inputs["timeUnit"] == "MONTHLY"
    thresholds = sorted({n["threshold"] for n in budget.inputs["notifications"]})
    assert thresholds == [50, 80, 100]
    assert budget.inputs["costFilters"] == [
        {"name": "TagKeyValue", "values": ["user:mlops:stack$prod"]}
    ]


def test_alert_topic_is_encrypted_and_admits_only_account_services(dev_plan: Plan) -> None:
    (topic,) = dev_plan.of_type("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"] == dev_plan.outputs["kms_key_arn"]
    (policy,) = dev_plan.of_type("aws:sns/topicPolicy:TopicPolicy")
    statement = json.loads(policy.inputs["policy"])["Statement"][0]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_cloudwatch_dashboard_shows_the_drift_metric(dev_plan: Plan) -> None:
    (dashboard,) = dev_plan.of_type("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dashboard.inputs["dashboardBody"])
    metrics = body["widgets"][0]["properties"]["metrics"][0]
    assert metrics[:2] == [contract.DRIFT_METRIC_NAMESPACE, contract.DRIFT_METRIC_MAX]


def test_helm_chart_is_pinned_and_values_come_from_config(prod_plan: Plan) -> None:
    (release,) = prod_plan.of_type("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "kube-prometheus-stack"
    assert release.inputs["version"] == "88.5.3"
    spec = release.inputs["values"]["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "15d"
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False


def test_service_monitor_selects_the_model_server_service(dev_plan: Plan) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kubernetes_objects(dev_plan)}
    monitor = objects[("ServiceMonitor", "model-server")]
    service = objects[("Service", "model-server")]
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_rules_are_valid_yaml_and_use_the_server_metric_names(dev_plan: Plan) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kubernetes_objects(dev_plan)}
    rule_object = objects[("PrometheusRule", "mlops-model-server")]
    reparsed = yaml.safe_load(yaml.safe_dump(rule_object))
    rules = reparsed["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "ModelServerLatencySLO", "ModelServerErrorRatio", "ModelServerNoTraffic", "ModelPredictionDrift"
    }  # fmt: skip
    exprs = " ".join(r["expr"] for r in rules)
    assert f"{contract.SERVE_METRIC_LATENCY}_bucket" in exprs
    assert f"{contract.SERVE_METRIC_REQUESTS}_total" in exprs
    assert "> 0.25" in next(r["expr"] for r in rules if r["alert"] == "ModelServerLatencySLO")
    for rule in rules:
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_prometheus_rule_thresholds_follow_arguments() -> None:
    spec = prometheus_rules(
        namespace="ns",
        latency_slo_p99_seconds=0.5,
        error_ratio_threshold=0.02,
        prediction_shift_threshold=0.2,
    )
    exprs = {r["alert"]: r["expr"] for r in spec["groups"][0]["rules"]}
    assert exprs["ModelServerLatencySLO"].endswith("> 0.5")
    assert exprs["ModelServerErrorRatio"].endswith("> 0.02")


def test_grafana_dashboards_are_json_configmaps_for_the_sidecar(dev_plan: Plan) -> None:
    maps = [o for o in kubernetes_objects(dev_plan) if o["kind"] == "ConfigMap"]
    assert len(maps) == 2
    for config_map in maps:
        assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
        (document,) = config_map["data"].values()
        dashboard = json.loads(document)
        assert dashboard["panels"], config_map["metadata"]["name"]
    drift = next(
        json.loads(next(iter(m["data"].values()))) for m in maps if "drift" in m["metadata"]["name"]
    )
    assert drift["panels"][1]["targets"][0]["metricName"] == contract.DRIFT_METRIC_FEATURE


def test_local_stack_still_has_the_drift_alarm_for_the_demo(local_plan: Plan) -> None:
    names = [
        a.inputs["name"]
        for a in local_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if "drift" in a.name
    ]
    assert names == ["mlops-local-drift"]
