"""`mlops env` decisions through a fake workspace: no Pulumi CLI, no cloud."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mlops.cli import env as command
from mlops.env import core
from mlops.env.workspace import (
    DEFAULT_BACKEND,
    Backend,
    EngineError,
    OnOutput,
    StateResource,
    local_path,
    resolve_backend,
)
from mlops.expiry import ExpiryError, expires_at, format_utc, is_expired, parse_utc

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
TEMPLATE = {
    "aws:region": "us-east-1",
    "mlops:environment": "ephemeral",
    "mlops:owner": "ml-platform",
    "mlops:ephemeral": {"base_stack": "dev", "ttl_hours": 24},
    "mlops:training": {"max_vcpus": 8},
}
K8S = StateResource(
    "urn:pulumi:pr-7::mlops-platform::kubernetes:apps/v1:Deployment::server",
    "kubernetes:apps/v1:Deployment",
)
SVC = StateResource(
    "urn:pulumi:pr-7::mlops-platform::kubernetes:core/v1:Service::server",
    "kubernetes:core/v1:Service",
)
BUCKET = StateResource(
    "urn:pulumi:pr-7::mlops-platform::aws:s3/bucketV2:BucketV2::raw", "aws:s3/bucketV2:BucketV2"
)
STACK = StateResource(
    "urn:pulumi:pr-7::mlops-platform::pulumi:pulumi:Stack::mlops-platform-pr-7",
    "pulumi:pulumi:Stack",
)
K8S_PROVIDER = StateResource(
    "urn:pulumi:pr-7::mlops-platform::pulumi:providers:kubernetes::k8s",
    "pulumi:providers:kubernetes",
)


class FakeWorkspace:
    """Stacks in memory; records every call; failures scripted per operation."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.state: dict[str, list[StateResource]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.failures: dict[str, list[str]] = {}  # op -> messages raised on successive calls
        self.destroy_leaves: list[StateResource] = []  # what a full destroy fails to remove

    def add(
        self, stack: str, config: Mapping[str, Any], resources: list[StateResource] | None = None
    ) -> None:
        self.configs[stack] = dict(config)
        self.state[stack] = list(resources or [])

    def _maybe_fail(self, op: str) -> None:
        queue = self.failures.get(op)
        if queue:
            raise EngineError(queue.pop(0))

    def list_stacks(self) -> list[str]:
        return list(self.configs)

    def read_config(self, stack: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.configs[stack]))

    def read_tags(self, stack: str) -> dict[str, str]:
        return dict(self.tags.get(stack, {}))

    def create_or_select(self, stack: str) -> None:
        self.calls.append(("create_or_select", stack))
        self.configs.setdefault(stack, {})
        self.state.setdefault(stack, [])

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None:
        self.calls.append(("write_config", stack))
        self.configs[stack] = dict(config)

    def set_tags(self, stack: str, tags: Mapping[str, str]) -> None:
        self.tags[stack] = dict(tags)

    def up(self, stack: str, on_output: OnOutput) -> None:
        self.calls.append(("up", stack))
        on_output("Updating (pr-7):\n")
        self._maybe_fail("up")
        self.state[stack] = [STACK, BUCKET]

    def refresh(self, stack: str, on_output: OnOutput) -> None:
        self.calls.append(("refresh", stack))
        self._maybe_fail("refresh")

    def destroy(self, stack: str, on_output: OnOutput, targets: list[str] | None = None) -> None:
        self.calls.append(("destroy", stack, tuple(targets) if targets is not None else None))
        self._maybe_fail("destroy")
        if targets is None:
            self.state[stack] = list(self.destroy_leaves)
        else:
            self.state[stack] = [r for r in self.state[stack] if r.urn not in targets]

    def resources(self, stack: str) -> list[StateResource]:
        return list(self.state[stack])

    def remove(self, stack: str) -> None:
        self.calls.append(("remove", stack))
        del self.configs[stack]

    def mutating_calls(self) -> list[tuple[Any, ...]]:
        return list(self.calls)


def ephemeral(expiry: str | None = "2026-11-29T09:00:00Z", owner: str = "alice") -> dict[str, Any]:
    section: dict[str, Any] = {"base_stack": "dev"}
    if expiry is not None:
        section["expires_at"] = expiry
    return {"mlops:environment": "ephemeral", "mlops:owner": owner, "mlops:ephemeral": section}


@pytest.fixture
def ws() -> FakeWorkspace:
    return FakeWorkspace()


@pytest.fixture
def out() -> list[str]:
    return []


@pytest.fixture
def env(ws: FakeWorkspace, out: list[str]) -> core.Env:
    sleeps: list[float] = []
    e = core.Env(workspace=ws, now=NOW, say=out.append, sleep=sleeps.append)
    e.sleeps = sleeps  # type: ignore[attr-defined]
    return e


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.pr-template.yaml"
    path.write_text(yaml.safe_dump({"config": TEMPLATE}))
    return path


# --- expiry arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T10:00:00Z", datetime(2026, 11, 29, 10, tzinfo=UTC)),
        ("2026-11-29T12:00:00+02:00", datetime(2026, 11, 29, 10, tzinfo=UTC)),
        ("2026-11-29T05:00:00-05:00", datetime(2026, 11, 29, 10, tzinfo=UTC)),
        (" 2026-11-29T10:00:00.500Z ", datetime(2026, 11, 29, 10, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_utc_normalises_offsets_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_utc(text)
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-29T10:00:00", "has no timezone"),
        ("2026-13-01T00:00:00Z", "is not ISO 8601"),
        ("tomorrow", "is not ISO 8601"),
        ("", "is not ISO 8601"),
    ],
)
def test_parse_utc_refuses_naive_and_malformed(text: str, message: str) -> None:
    with pytest.raises(ExpiryError, match=message):
        parse_utc(text)


def test_expires_at_adds_ttl_in_utc_and_formats_with_z() -> None:
    local = datetime(2026, 11, 29, 23, 30, 15, 999, tzinfo=timezone(timedelta(hours=-8)))
    assert format_utc(expires_at(local, 48)) == "2026-12-02T07:30:15Z"  # crosses a month too


@pytest.mark.parametrize("ttl", [0, -1, 24 * 14 + 1])
def test_expires_at_refuses_ttl_out_of_range(ttl: int) -> None:
    with pytest.raises(ExpiryError, match="--ttl-hours"):
        expires_at(NOW, ttl)


def test_expiry_is_inclusive_at_the_instant() -> None:
    assert is_expired(NOW, NOW)
    assert not is_expired(NOW + timedelta(seconds=1), NOW)


# --- up ----------------------------------------------------------------------------------


def test_up_creates_stack_from_template_with_expiry(
    env: core.Env, ws: FakeWorkspace, template: Path, out: list[str]
) -> None:
    assert core.up(env, 7, template, ttl_hours=6, dry_run=False) == "pr-7"
    assert ws.calls == [("create_or_select", "pr-7"), ("write_config", "pr-7"), ("up", "pr-7")]
    config = ws.configs["pr-7"]
    assert config["mlops:environment"] == "ephemeral"
    assert config["mlops:ephemeral"] == {
        "base_stack": "dev",
        "ttl_hours": 6,
        "expires_at": "2026-11-29T16:00:00Z",
    }
    assert config["mlops:training"] == {"max_vcpus": 8}  # the rest of the template copied
    assert ws.tags["pr-7"] == {
        "mlops:environment": "ephemeral",
        "mlops:expires-at": "2026-11-29T16:00:00Z",
        "mlops:owner": "ml-platform",
    }
    assert "Updating (pr-7):" in out  # engine output streamed as it comes


def test_up_defaults_ttl_to_the_template(env: core.Env, ws: FakeWorkspace, template: Path) -> None:
    core.up(env, 7, template, ttl_hours=None, dry_run=False)
    assert ws.configs["pr-7"]["mlops:ephemeral"]["expires_at"] == "2026-11-30T10:00:00Z"


def test_up_updates_an_existing_ephemeral_stack_and_renews_expiry(
    env: core.Env, ws: FakeWorkspace, template: Path
) -> None:
    ws.add("pr-7", ephemeral("2026-11-29T11:00:00Z"))
    core.up(env, 7, template, ttl_hours=2, dry_run=False)
    assert ws.configs["pr-7"]["mlops:ephemeral"]["expires_at"] == "2026-11-29T12:00:00Z"


def test_up_dry_run_changes_nothing(
    env: core.Env, ws: FakeWorkspace, template: Path, out: list[str]
) -> None:
    core.up(env, 7, template, ttl_hours=6, dry_run=True)
    assert ws.calls == [] and "pr-7" not in ws.configs
    assert out == [
        "dry run: would create stack pr-7 from Pulumi.pr-template.yaml, expiring 2026-11-29T16:00:00Z"
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mlops:environment": "prod"}, "is a prod stack"),
        ({"mlops:environment": "staging"}, "is a staging stack"),
        ({"mlops:environment": "dev"}, "is not marked ephemeral \\(mlops:environment is 'dev'\\)"),
        ({}, "is not marked ephemeral \\(mlops:environment is not set\\)"),
    ],
)
def test_up_refuses_to_overwrite_a_stack_not_marked_ephemeral(
    env: core.Env, ws: FakeWorkspace, template: Path, config: dict[str, Any], message: str
) -> None:
    ws.add("pr-7", config)
    with pytest.raises(core.Refusal, match=message):
        core.up(env, 7, template, ttl_hours=6, dry_run=False)
    assert ws.calls == [] and ws.configs["pr-7"] == config


@pytest.mark.parametrize(
    ("template_config", "message"),
    [
        ({**TEMPLATE, "mlops:environment": "dev"}, "a PR template must say ephemeral"),
        ({**TEMPLATE, "mlops:db": {"secure": "v1:abc"}}, "mlops:db are secrets encrypted"),
    ],
)
def test_up_refuses_a_template_it_cannot_use(
    env: core.Env, ws: FakeWorkspace, tmp_path: Path, template_config: dict[str, Any], message: str
) -> None:
    path = tmp_path / "Pulumi.pr-template.yaml"
    path.write_text(yaml.safe_dump({"config": template_config}))
    with pytest.raises(core.Refusal, match=message):
        core.up(env, 7, path, ttl_hours=6, dry_run=False)
    assert ws.calls == []


def test_up_refuses_bad_pr_numbers_and_ttls(env: core.Env, template: Path) -> None:
    with pytest.raises(core.Refusal, match="--pr 0"):
        core.up(env, 0, template, ttl_hours=6, dry_run=False)
    with pytest.raises(core.Refusal, match="--ttl-hours 0"):
        core.up(env, 7, template, ttl_hours=0, dry_run=False)


def test_a_guarded_stack_tag_wins_over_an_ephemeral_config(
    env: core.Env, ws: FakeWorkspace
) -> None:
    ws.add("pr-7", ephemeral())
    ws.tags["pr-7"] = {"mlops:environment": "prod"}
    with pytest.raises(core.Refusal, match="is a prod stack"):
        core.destroy(env, "pr-7", dry_run=False)
    assert ws.calls == []


def test_stack_tags_stand_in_when_the_config_is_not_local(env: core.Env, ws: FakeWorkspace) -> None:
    ws.add("pr-9", {})
    ws.tags["pr-9"] = {
        "mlops:environment": "ephemeral",
        "mlops:expires-at": "2026-11-29T09:00:00Z",
        "mlops:owner": "bob",
    }
    assert core.listing(env) == [core.Row("pr-9", "bob", "2026-11-29T09:00:00Z", "expired")]


# --- destroy -----------------------------------------------------------------------------


def test_destroy_refreshes_then_kubernetes_first_then_rest_then_removes(
    env: core.Env, ws: FakeWorkspace
) -> None:
    ws.add("pr-7", ephemeral(), [STACK, K8S_PROVIDER, K8S, SVC, BUCKET])
    outcome = core.destroy(env, "pr-7", dry_run=False)
    assert outcome == core.DestroyOutcome("pr-7", removed=True)
    assert ws.calls == [
        ("refresh", "pr-7"),
        ("destroy", "pr-7", (K8S.urn, SVC.urn)),
        ("destroy", "pr-7", None),
        ("remove", "pr-7"),
    ]


def test_destroy_without_kubernetes_objects_is_one_pass(env: core.Env, ws: FakeWorkspace) -> None:
    ws.add("pr-7", ephemeral(), [STACK, BUCKET])
    core.destroy(env, "pr-7", dry_run=False)
    assert [c[0] for c in ws.calls] == ["refresh", "destroy", "remove"]


def test_destroy_keeps_the_stack_when_resources_remain(env: core.Env, ws: FakeWorkspace) -> None:
    ws.add("pr-7", ephemeral(), [STACK, BUCKET])
    ws.destroy_leaves = [STACK, BUCKET]  # e.g. protected, or deleted outside Pulumi's view
    outcome = core.destroy(env, "pr-7", dry_run=False)
    assert outcome == core.DestroyOutcome("pr-7", removed=False, remaining=(BUCKET.urn,))
    assert ("remove", "pr-7") not in ws.calls and "pr-7" in ws.configs


def test_destroy_retries_transient_errors_with_backoff(
    env: core.Env, ws: FakeWorkspace, out: list[str]
) -> None:
    ws.add("pr-7", ephemeral(), [STACK, BUCKET])
    ws.failures["destroy"] = [
        "error: deleting security group sg-1: DependencyViolation: resource sg-1 has a dependent object",
        "error: ThrottlingException: Rate exceeded",
    ]
    assert core.destroy(env, "pr-7", dry_run=False).removed
    assert [c[0] for c in ws.calls].count("destroy") == 3
    assert env.sleeps == [15.0, 60.0]  # type: ignore[attr-defined]
    assert "pr-7: destroy: transient failure (attempt 1/3); retrying in 15s" in out


def test_destroy_gives_up_after_three_transient_failures(env: core.Env, ws: FakeWorkspace) -> None:
    ws.add("pr-7", ephemeral(), [STACK, BUCKET])
    ws.failures["destroy"] = ["DependencyViolation"] * 3
    with pytest.raises(EngineError, match="DependencyViolation"):
        core.destroy(env, "pr-7", dry_run=False)
    assert [c[0] for c in ws.calls].count("destroy") == 3
    assert ("remove", "pr-7") not in ws.calls


def test_destroy_does_not_retry_other_errors(env: core.Env, ws: FakeWorkspace) -> None:
    ws.add("pr-7", ephemeral(), [STACK, BUCKET])
    ws.failures["destroy"] = ["error: AccessDenied: not authorized to perform s3:DeleteBucket"]
    with pytest.raises(EngineError, match="AccessDenied"):
        core.destroy(env, "pr-7", dry_run=False)
    assert [c[0] for c in ws.calls] == ["refresh", "destroy"]
    assert env.sleeps == []  # type: ignore[attr-defined]


def test_refresh_is_retried_too(env: core.Env, ws: FakeWorkspace) -> None:
    ws.add("pr-7", ephemeral(), [STACK])
    ws.failures["refresh"] = ["TooManyRequestsException"]
    assert core.destroy(env, "pr-7", dry_run=False).removed
    assert [c[0] for c in ws.calls][:2] == ["refresh", "refresh"]


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("DependencyViolation: resource sg-1 has a dependent object", True),
        ("Error: The vpc 'vpc-1' has dependencies and cannot be deleted. resource is in use", True),
        ("ResourceInUseException: Cluster has nodegroups attached", True),
        ("Throttling: Rate exceeded", True),
        ("OperationAborted: A conflicting conditional operation is currently in progress", True),
        ("AccessDenied", False),
        ("BucketNotEmpty: The bucket you tried to delete is not empty", False),
        ("error: the stack is currently locked by 1 lock(s)", False),
    ],
)
def test_is_transient(message: str, transient: bool) -> None:
    assert core.is_transient(message) is transient


def test_destroy_dry_run_touches_nothing(env: core.Env, ws: FakeWorkspace, out: list[str]) -> None:
    ws.add("pr-7", ephemeral(), [STACK, K8S, BUCKET])
    outcome = core.destroy(env, "pr-7", dry_run=True)
    assert ws.calls == [] and not outcome.removed
    assert out == [
        "dry run: would refresh pr-7, destroy 1 Kubernetes object(s) first, then the other 1 resource(s), then remove the stack"
    ]


@pytest.mark.parametrize("environment", ["prod", "staging", "dev", "local", None])
def test_destroy_refuses_non_ephemeral_stacks(
    env: core.Env, ws: FakeWorkspace, environment: str | None
) -> None:
    config = {"mlops:environment": environment} if environment else {}
    ws.add("pr-7", config, [STACK, BUCKET])
    with pytest.raises(core.Refusal):
        core.destroy(env, "pr-7", dry_run=False)
    assert ws.calls == []


def test_destroy_of_an_unknown_stack_is_refused(env: core.Env) -> None:
    with pytest.raises(core.Refusal, match="does not exist"):
        core.destroy(env, "pr-404", dry_run=False)


# --- list and reap -----------------------------------------------------------------------


def _populate(ws: FakeWorkspace) -> None:
    ws.add("dev", {"mlops:environment": "dev", "mlops:owner": "team"}, [STACK])
    ws.add("prod", {"mlops:environment": "prod", "mlops:owner": "team"}, [STACK])
    ws.add("pr-1", ephemeral("2026-11-29T09:59:59Z", "alice"), [STACK, BUCKET])  # expired
    ws.add("pr-2", ephemeral("2026-11-29T10:00:01Z", "bob"), [STACK, BUCKET])  # active
    ws.add("pr-3", ephemeral("2026-11-29T11:00:00+02:00", "carol"), [STACK, BUCKET])  # 09:00Z
    ws.add("pr-4", ephemeral("next tuesday", "dan"), [STACK])
    ws.add("pr-5", ephemeral(None, "erin"), [STACK])
    # Says prod in its config though named like a PR stack: never listed, never reaped.
    ws.add("pr-6", {**ephemeral("2020-01-01T00:00:00Z"), "mlops:environment": "prod"}, [STACK])


def test_list_shows_only_ephemeral_stacks_with_status(env: core.Env, ws: FakeWorkspace) -> None:
    _populate(ws)
    rows = core.listing(env)
    assert [(r.stack, r.owner, r.expires_at, r.status.split(":")[0]) for r in rows] == [
        ("pr-1", "alice", "2026-11-29T09:59:59Z", "expired"),
        ("pr-2", "bob", "2026-11-29T10:00:01Z", "active"),
        ("pr-3", "carol", "2026-11-29T09:00:00Z", "expired"),
        ("pr-4", "dan", "next tuesday", "bad expiry"),
        ("pr-5", "erin", None, "no expiry"),
    ]


def test_reap_destroys_only_expired_ephemeral_stacks(env: core.Env, ws: FakeWorkspace) -> None:
    _populate(ws)
    results = core.reap(env, dry_run=False)
    assert [(r.stack, r.action) for r in results] == [
        ("pr-1", "reaped"),
        ("pr-2", "kept"),
        ("pr-3", "reaped"),
        ("pr-4", "skipped"),
        ("pr-5", "skipped"),
    ]
    assert sorted(ws.configs) == ["dev", "pr-2", "pr-4", "pr-5", "pr-6", "prod"]
    touched = {c[1] for c in ws.calls}
    assert touched == {"pr-1", "pr-3"}


def test_reap_dry_run_changes_nothing(env: core.Env, ws: FakeWorkspace) -> None:
    _populate(ws)
    results = core.reap(env, dry_run=True)
    assert [(r.stack, r.action) for r in results if r.action == "would reap"] == [
        ("pr-1", "would reap"),
        ("pr-3", "would reap"),
    ]
    assert ws.calls == []


def test_reap_reports_a_failure_and_carries_on(env: core.Env, ws: FakeWorkspace) -> None:
    _populate(ws)
    ws.failures["destroy"] = ["error: AccessDenied"]  # the first stack's destroy fails
    results = {r.stack: (r.action, r.detail) for r in core.reap(env, dry_run=False)}
    assert results["pr-1"] == ("failed", "error: AccessDenied")
    assert results["pr-3"][0] == "reaped"


# --- backend -----------------------------------------------------------------------------


def test_backend_resolution_order(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    assert resolve_backend(None, {}, creds) == Backend(DEFAULT_BACKEND, "default")
    creds.write_text(json.dumps({"current": "https://api.pulumi.com"}))
    assert resolve_backend(None, {}, creds).url == "https://api.pulumi.com"
    env = {"PULUMI_BACKEND_URL": "s3://state-bucket"}
    assert resolve_backend(None, env, creds) == Backend("s3://state-bucket", "PULUMI_BACKEND_URL")
    assert resolve_backend("file:///srv/state", env, creds).source == "--backend"
    assert local_path(DEFAULT_BACKEND) == Path.home() / ".pulumi-mlops"
    assert local_path("s3://state-bucket") is None


# --- the commands ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, ws: FakeWorkspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: mlops-platform\nruntime: python\n")
    (tmp_path / "Pulumi.pr-template.yaml").write_text(yaml.safe_dump({"config": TEMPLATE}))
    monkeypatch.setattr(command, "workspace_factory", lambda root, backend: ws)
    monkeypatch.setattr(command.time, "sleep", lambda s: None)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _invoke(project: Path, *args: str) -> Any:
    return CliRunner().invoke(command.env_group, ["--project-dir", str(project), *args])


def test_cli_up_then_list_then_destroy(project: Path, ws: FakeWorkspace) -> None:
    run = _invoke(project, "up", "--pr", "7", "--ttl-hours", "3")
    assert run.exit_code == 0, run.output
    assert "backend: file://~/.pulumi-mlops (from default)" in run.output
    assert "stack pr-7 is up" in run.output
    run = _invoke(project, "list", "--now", "2026-01-01T00:00:00Z")
    assert run.exit_code == 0 and "pr-7" in run.output and "active" in run.output
    run = _invoke(project, "destroy", "--pr", "7")
    assert run.exit_code == 0, run.output
    assert "pr-7" not in ws.configs


def test_cli_refusals_exit_2_with_the_reason(project: Path, ws: FakeWorkspace) -> None:
    ws.add("pr-7", {"mlops:environment": "prod"}, [STACK, BUCKET])
    for args in (
        ["destroy", "--pr", "7"],
        ["destroy", "--pr", "7", "--dry-run"],
        ["up", "--pr", "7"],
    ):
        run = _invoke(project, *args)
        assert run.exit_code == 2, args
        assert "error: stack 'pr-7' is a prod stack" in run.output
    assert ws.calls == []


def test_cli_destroy_exits_1_when_resources_remain(project: Path, ws: FakeWorkspace) -> None:
    ws.add("pr-7", ephemeral(), [STACK, BUCKET])
    ws.destroy_leaves = [BUCKET]
    run = _invoke(project, "destroy", "--pr", "7")
    assert run.exit_code == 1
    assert f"still in state: {BUCKET.urn}" in run.output
    assert "mlops sweep --stack pr-7" in run.output


def test_cli_reap_exits_1_when_a_stack_fails(project: Path, ws: FakeWorkspace) -> None:
    _populate(ws)
    ws.failures["destroy"] = ["error: AccessDenied"]
    run = _invoke(project, "reap", "--now", NOW.isoformat())
    assert run.exit_code == 1
    assert "failed      pr-1" in run.output and "reaped      pr-3" in run.output


def test_cli_reap_rejects_a_naive_now(project: Path) -> None:
    run = _invoke(project, "reap", "--now", "2026-11-29T10:00:00")
    assert run.exit_code == 2 and "has no timezone" in run.output
