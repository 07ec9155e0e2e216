"""The composition root: defaults live in the config model only, the monitoring halves keep
the URNs of the one component they were, and no Batch capacity sits behind an unused queue."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from mlops.plan import Plan

P = "urn:pulumi:dev::mlops-platform::"


def test_component_args_state_every_value() -> None:
    import infra.components

    with_defaults = []
    for module_info in pkgutil.iter_modules(infra.components.__path__):
        module = importlib.import_module(f"infra.components.{module_info.name}")
        for name, value in vars(module).items():
            if not (name.endswith("Args") and dataclasses.is_dataclass(value)):
                continue
            if value.__module__ != module.__name__:
                continue
            with_defaults += [
                f"{module.__name__}.{name}.{f.name}"
                for f in dataclasses.fields(value)
                if f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING
            ]
    assert not with_defaults, f"defaults belong in infra/config.py: {with_defaults}"


def test_cluster_monitoring_keeps_the_urns_of_monitoring(dev_plan: Plan) -> None:
    by_urn = dev_plan.by_urn()
    aws_half = f"{P}mlops:monitoring:Monitoring::mlops-dev-monitoring"
    cluster_half = f"{P}mlops:monitoring:Monitoring::mlops-dev-cluster-monitoring"
    assert aws_half in by_urn and cluster_half in by_urn
    release = by_urn[
        f"{P}mlops:monitoring:Monitoring$kubernetes:helm.sh/v3:Release::mlops-dev-kube-prometheus-stack"
    ]
    namespace = by_urn[
        f"{P}mlops:monitoring:Monitoring$kubernetes:core/v1:Namespace::mlops-dev-ns-monitoring"
    ]
    alarm = by_urn[
        f"{P}mlops:monitoring:Monitoring$aws:cloudwatch/metricAlarm:MetricAlarm::mlops-dev-drift-alarm"
    ]
    assert release.parent == cluster_half, release.urn
    assert namespace.parent == cluster_half, namespace.urn
    assert alarm.parent == aws_half, alarm.urn


def test_every_compute_environment_feeds_the_exported_queue(any_plan: Plan) -> None:
    (queue,) = any_plan.of_type("aws:batch/jobQueue:JobQueue")
    assert queue.computed["arn"] == any_plan.outputs["job_queue_arn"], queue.urn
    fed = {o["computeEnvironment"] for o in queue.inputs["computeEnvironmentOrders"]}
    for environment in any_plan.of_type("aws:batch/computeEnvironment:ComputeEnvironment"):
        assert environment.computed["arn"] in fed, f"{environment.urn}: no queue uses it"
