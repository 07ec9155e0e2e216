"""The retrain pipeline as data: the Step Functions definition and the event patterns.

prepare → train → evaluate → (decision) → register, each a Batch job run with the
`submitJob.sync` integration. The evaluate job writes its decision to S3; the state machine
reads it and registers only on "promote". Any failure publishes to the alert topic.
"""

from __future__ import annotations

from typing import Any

from training_jobs import contract

# The contract's job names, kept importable from here. The lifecycle in order, each a Batch
# job definition and a state; and every job with a definition (drift runs on a schedule).
PIPELINE_JOBS: tuple[str, ...] = contract.PIPELINE_JOBS
BATCH_JOBS: tuple[str, ...] = contract.BATCH_JOBS


def _state_name(job: str) -> str:
    return job.capitalize()


def _catch() -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}]


def _batch_task(job: str, queue_arn: str, definition_arn: str, next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {
            "JobName.$": f"States.Format('{job}-{{}}', $$.Execution.Name)",
            "JobQueue": queue_arn,
            "JobDefinition": definition_arn,
            "ContainerOverrides": {
                "Environment": [
                    {"Name": contract.PIPELINE_EXECUTION_VARIABLE, "Value.$": "$$.Execution.Id"}
                ]
            },
        },
        "ResultPath": f"$.jobs.{job}",
        "Catch": _catch(),
        "Next": next_state,
    }


def state_machine_definition(
    *,
    job_queue_arn: str,
    job_definition_arns: dict[str, str],
    models_bucket: str,
    model_name: str,
    alert_topic_arn: str,
) -> dict[str, Any]:
    """The Amazon States Language document of the retrain pipeline."""
    missing = [job for job in PIPELINE_JOBS if job not in job_definition_arns]
    if missing:
        raise ValueError(f"no job definition for {', '.join(missing)}")
    prepare, train, evaluate, register = contract.PIPELINE_JOBS

    def task(job: str, next_state: str) -> dict[str, Any]:
        return _batch_task(job, job_queue_arn, job_definition_arns[job], next_state)

    states: dict[str, Any] = {
        _state_name(prepare): task(prepare, _state_name(train)),
        _state_name(train): task(train, _state_name(evaluate)),
        _state_name(evaluate): task(evaluate, "ReadDecision"),
        "ReadDecision": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
            # The decision this execution's evaluate made (contract.pointer_key with the
            # execution): concurrent executions never read each other's.
            "Parameters": {
                "Bucket": models_bucket,
                "Key.$": f"States.Format('{decision_key_template(model_name)}', $$.Execution.Name)",
            },
            "ResultSelector": {"decision.$": "States.StringToJson($.Body)"},
            "ResultPath": "$.evaluation",
            "Catch": _catch(),
            "Next": "PromoteOrReject",
        },
        "PromoteOrReject": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.evaluation.decision.decision",
                    "StringEquals": "promote",
                    "Next": _state_name(register),
                }
            ],
            "Default": "CandidateRejected",
        },
        _state_name(register): task(register, "Promoted"),
        "Promoted": {"Type": "Succeed"},
        "CandidateRejected": {"Type": "Succeed", "Comment": "the champion stays"},
        "NotifyFailure": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {
                "TopicArn": alert_topic_arn,
                "Subject": "mlops retrain pipeline failed",
                "Message.$": "States.JsonToString($.error)",
            },
            "Next": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "PipelineFailed"},
    }
    return {
        "Comment": "Retrain: prepare -> train -> evaluate -> register on promote",
        "StartAt": _state_name(prepare),
        "TimeoutSeconds": 6 * 3600,
        "States": states,
    }


def decision_key_template(model_name: str) -> str:
    """`contract.pointer_key` of the decisions, with `{}` where the execution's name goes."""
    key = contract.pointer_key(contract.PREFIX_DECISIONS, model_name, "{}")
    if not key.endswith("/{}.json"):
        raise ValueError(f"unexpected pointer layout {key!r}")
    return key


def decision_keys_pattern(model_name: str) -> str:
    """Every execution's decision pointer (what the state machine may read)."""
    return decision_key_template(model_name).replace("{}", "*")


def alarm_state_change_pattern(alarm_arn: str) -> dict[str, Any]:
    """EventBridge pattern: this CloudWatch alarm entered ALARM."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [alarm_arn],
        "detail": {"state": {"value": ["ALARM"]}},
    }


def drift_alarm_name(base_name: str) -> str:
    """The drift alarm's name: the monitoring alarm and the pipeline's rule share it."""
    return f"{base_name}-drift"


def retry_strategy(attempts: int) -> dict[str, Any]:
    """Retry when the host went away (spot interruption), never on an application error."""
    return {
        "attempts": attempts,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "CannotPullContainerError*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
