"""TrainingCompute and Pipeline under the mocks, and the state machine as data."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.planning.pipeline import (
    PIPELINE_JOBS,
    alarm_state_change_pattern,
    retry_strategy,
    state_machine_definition,
)
from mlops.plan import Plan, PlanResource
from training_jobs import contract


def _policies(plan: Plan) -> list[tuple[PlanResource, dict[str, Any]]]:
    found = []
    for resource in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        found.append((resource, json.loads(resource.inputs["policy"])))
    return found


def test_no_wildcard_actions_in_any_policy(any_plan: Plan) -> None:
    policies = _policies(any_plan)
    assert policies
    for resource, document in policies:
        for statement in document["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            for action in actions:
                assert "*" not in action.split(":", 1)[1].rstrip("*") and action != "*", (
                    f"{resource.urn}: wildcard action {action}"
                )
                assert not action.endswith(":*"), f"{resource.urn}: wildcard action {action}"


def test_job_role_reaches_only_platform_buckets_key_and_logs(dev_plan: Plan) -> None:
    (job_policy,) = [
        r
        for r in dev_plan.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name.endswith("job-policy")
    ]
    statements = {s["Sid"]: s for s in json.loads(job_policy.inputs["policy"])["Statement"]}
    data_buckets = {
        f"arn:aws:s3:::{dev_plan.outputs[o]}"
        for o in ("raw_bucket", "curated_bucket", "models_bucket", "captures_bucket")
    }
    assert set(statements["ListPlatformBuckets"]["Resource"]) == data_buckets
    assert set(statements["ReadWritePlatformObjects"]["Resource"]) == {
        f"{b}/*" for b in data_buckets
    }
    assert statements["UsePlatformKey"]["Resource"] == [dev_plan.outputs["kms_key_arn"]]
    assert statements["PublishDriftMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "MLOps/Drift"}
    }


def test_compute_is_spot_and_scales_to_zero(dev_plan: Plan) -> None:
    environments = {
        r.name: r for r in dev_plan.of_type("aws:batch/computeEnvironment:ComputeEnvironment")
    }
    spot = environments["mlops-dev-training-cpu"].inputs["computeResources"]
    assert spot["type"] == "SPOT"
    assert spot["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert spot["minVcpus"] == 0 and spot["maxVcpus"] == 32
    assert spot["instanceTypes"] == ["m6i.large", "m6i.xlarge", "m5.large", "m5.xlarge"]
    fallback = environments["mlops-dev-training-cpu-ondemand"].inputs["computeResources"]
    assert fallback["type"] == "EC2" and fallback["minVcpus"] == 0
    (queue,) = dev_plan.of_type("aws:batch/jobQueue:JobQueue")
    orders = sorted(queue.inputs["computeEnvironmentOrders"], key=lambda o: o["order"])
    assert [o["order"] for o in orders] == [1, 2]
    (template,) = [
        t
        for t in dev_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
        if t.name == "mlops-dev-training-lt"
    ]
    assert template.inputs["metadataOptions"]["httpTokens"] == "required"
    assert template.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert not dev_plan.of_type("aws:batch/jobQueue:JobQueue")[0].inputs.get("schedulingPolicyArn")


def test_one_job_definition_per_job_module(dev_plan: Plan) -> None:
    definitions = {
        r.name.rsplit("-", 1)[-1]: r
        for r in dev_plan.of_type("aws:batch/jobDefinition:JobDefinition")
    }
    assert set(definitions) == {"prepare", "train", "evaluate", "register", "drift"}
    repo_url = dev_plan.outputs["jobs_repository_url"]
    image = dev_plan.outputs["jobs_image"]
    assert re.fullmatch(rf"{re.escape(repo_url)}@sha256:[0-9a-f]{{64}}", image)
    for job, definition in definitions.items():
        container = json.loads(definition.inputs["containerProperties"])
        assert container["image"] == image, definition.urn
        assert container["command"] == ["python", "-m", f"training_jobs.{job}"], definition.urn
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["MLOPS_RAW_BUCKET"] == dev_plan.outputs["raw_bucket"], definition.urn
        retry = definition.inputs["retryStrategy"]
        assert retry["attempts"] == 3
        assert retry["evaluateOnExits"][-1] == {"action": "EXIT", "onReason": "*"}, definition.urn
        assert definition.inputs["timeout"]["attemptDurationSeconds"] == 7200, definition.urn


def test_retry_strategy_retries_host_loss_but_exits_on_application_errors() -> None:
    rules = retry_strategy(3)["evaluateOnExit"]
    assert rules[0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}
    assert rules[-1] == {"onReason": "*", "action": "EXIT"}


def _definition() -> dict[str, Any]:
    return state_machine_definition(
        job_queue_arn="arn:queue",
        job_definition_arns={job: f"arn:jd/{job}" for job in PIPELINE_JOBS},
        models_bucket="models-bucket",
        model_name="churn",
        alert_topic_arn="arn:topic",
    )


def test_state_machine_runs_the_lifecycle_in_order() -> None:
    states = _definition()["States"]
    order, state = [], _definition()["StartAt"]
    while states[state]["Type"] != "Succeed":
        assert len(order) < len(states), f"no way to Succeed: a cycle through {order}"
        order.append(state)
        node = states[state]
        state = node["Choices"][0]["Next"] if node["Type"] == "Choice" else node["Next"]
    assert order == ["Prepare", "Train", "Evaluate", "ReadDecision", "PromoteOrReject", "Register"]
    for job in PIPELINE_JOBS:
        task = states[job.capitalize()]
        assert task["Resource"] == "arn:aws:states:::batch:submitJob.sync"
        assert task["Parameters"]["JobDefinition"] == f"arn:jd/{job}"
        assert task["Parameters"]["JobQueue"] == "arn:queue"
        assert task["Catch"][0]["Next"] == "NotifyFailure"
    choice = states["PromoteOrReject"]
    assert choice["Choices"][0]["StringEquals"] == "promote"
    assert choice["Default"] == "CandidateRejected"
    # The decision of this execution (where its evaluate wrote it), never a shared key that
    # a concurrent execution could overwrite.
    assert states["ReadDecision"]["Parameters"] == {
        "Bucket": "models-bucket",
        "Key.$": "States.Format('decisions/churn/executions/{}.json', $$.Execution.Name)",
    }
    assert contract.pointer_key(contract.PREFIX_DECISIONS, "churn", "arn:x:execution:m:run-7") == (
        "decisions/churn/executions/run-7.json"
    )
    assert states["NotifyFailure"]["Parameters"]["TopicArn"] == "arn:topic"


def test_state_machine_refuses_a_missing_job_definition() -> None:
    with pytest.raises(ValueError, match="no job definition for register"):
        state_machine_definition(
            job_queue_arn="q",
            job_definition_arns={"prepare": "a", "train": "b", "evaluate": "c"},
            models_bucket="m",
            model_name="churn",
            alert_topic_arn="t",
        )


def test_planned_state_machine_references_real_definitions_and_queue(dev_plan: Plan) -> None:
    (machine,) = dev_plan.of_type("aws:sfn/stateMachine:StateMachine")
    states = json.loads(machine.inputs["definition"])["States"]
    by_name = {r.name: r for r in dev_plan.resources}
    definition_arns = {
        f"arn:aws:batch:us-east-1:123456789012:jobDefinition/{by_name[f'mlops-dev-training-{job}'].inputs['name']}"
        for job in PIPELINE_JOBS
    }
    used = {states[job.capitalize()]["Parameters"]["JobDefinition"] for job in PIPELINE_JOBS}
    assert used == definition_arns
    (queue,) = dev_plan.of_type("aws:batch/jobQueue:JobQueue")
    assert states["Prepare"]["Parameters"]["JobQueue"].endswith(queue.inputs["name"])
    assert machine.inputs["tracingConfiguration"] == {"enabled": True}
    assert any(d.endswith("::mlops-dev-training-queue") for d in machine.dependencies)


def test_the_drift_job_runs_on_a_schedule(dev_plan: Plan) -> None:
    # Without it no MaxDriftScore is published, the drift alarm never fires, the loop never
    # closes in AWS.
    (schedule,) = dev_plan.of_type("aws:scheduler/schedule:Schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(1 day)"
    target = schedule.inputs["target"]
    assert target["arn"] == "arn:aws:scheduler:::aws-sdk:batch:submitJob"
    submitted = json.loads(target["input"])
    by_name = {r.name: r for r in dev_plan.resources}
    drift = by_name["mlops-dev-training-drift"]
    assert submitted["JobDefinition"].endswith(drift.inputs["name"])
    assert submitted["JobQueue"] == dev_plan.outputs["job_queue_arn"]
    policy = by_name["mlops-dev-retrain-drift-scheduler-policy"]
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Action"] == ["batch:SubmitJob"]
    assert sorted(statement["Resource"]) == sorted(
        [submitted["JobDefinition"], submitted["JobQueue"]]
    )


def test_drift_alarm_starts_the_pipeline(dev_plan: Plan) -> None:
    rules = {r.name: r for r in dev_plan.of_type("aws:cloudwatch/eventRule:EventRule")}
    pattern = json.loads(rules["mlops-dev-retrain-on-drift"].inputs["eventPattern"])
    assert pattern == alarm_state_change_pattern(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:mlops-dev-drift"
    )
    targets = [
        t
        for t in dev_plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.inputs["arn"] == dev_plan.outputs["state_machine_arn"]
    ]
    assert {t.inputs["rule"] for t in targets} == {
        rules["mlops-dev-retrain-on-drift"].inputs["name"]
    }
    assert "mlops-dev-retrain-schedule" not in rules  # no schedule in dev's config
