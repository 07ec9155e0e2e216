"""`mlops env` decisions: which stack, what config, what may be destroyed, in what order.

Pure functions decide; `up`, `destroy`, `listing` and `reap` carry the decisions out through
a `Workspace`. The one rule every path goes through is `guard`: a stack whose config does
not say `mlops:environment: ephemeral`, or says staging/prod anywhere, is refused.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mlops.env.workspace import EngineError, OnOutput, StateResource, Workspace
from mlops.expiry import ExpiryError, expires_at, format_utc, is_expired, parse_utc
from training_jobs import contract
from training_jobs.contract import TAG_ENVIRONMENT, TAG_EXPIRES_AT, TAG_OWNER

TEMPLATE_STACK = "pr-template"
KEY_ENVIRONMENT = "mlops:environment"
KEY_OWNER = "mlops:owner"
KEY_EPHEMERAL = "mlops:ephemeral"
EPHEMERAL = contract.ENV_EPHEMERAL
DEFAULT_TTL_HOURS = 48

_PR_STACK = re.compile(r"^pr-([1-9][0-9]{0,8})$")


class Refusal(Exception):
    """The command will not touch this stack; the message says why and what to do."""


# --- names and config --------------------------------------------------------------------


def stack_name(pr: int) -> str:
    if isinstance(pr, bool) or pr < 1:
        raise Refusal(f"--pr {pr!r}: expected a pull request number (1 or more)")
    return f"pr-{pr}"


@dataclass(frozen=True)
class Marking:
    """What a stack says about itself: from its config, with stack tags as a fallback."""

    stack: str
    environment: str | None
    owner: str | None
    expires_at_raw: str | None
    guarded_hint: str | None = None  # a guarded environment (staging, prod) seen anywhere

    @property
    def is_ephemeral(self) -> bool:
        return self.environment == EPHEMERAL and self.guarded_hint is None

    def expiry(self) -> datetime | None:
        """The expiry instant; raises ExpiryError if it is set but unreadable."""
        if self.expires_at_raw is None:
            return None
        return parse_utc(self.expires_at_raw, what=f"{self.stack}: {KEY_EPHEMERAL}.expires_at")


def marking(stack: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> Marking:
    env_config = config.get(KEY_ENVIRONMENT)
    env_tag = tags.get(TAG_ENVIRONMENT)
    section = config.get(KEY_EPHEMERAL)
    expiry = section.get("expires_at") if isinstance(section, dict) else None
    seen = [str(v) for v in (env_config, env_tag) if v is not None]
    return Marking(
        stack=stack,
        environment=str(env_config) if env_config is not None else env_tag,
        owner=_str_or_none(config.get(KEY_OWNER)) or tags.get(TAG_OWNER),
        expires_at_raw=_str_or_none(expiry) or tags.get(TAG_EXPIRES_AT),
        guarded_hint=next((v for v in seen if v in contract.GUARDED_ENVIRONMENTS), None),
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def guard(mark: Marking) -> None:
    """Refuse anything but a stack positively marked ephemeral."""
    if mark.guarded_hint is not None:
        raise Refusal(
            f"stack {mark.stack!r} is a {mark.guarded_hint} stack: `mlops env` never touches "
            "staging or prod; use the normal `pulumi` workflow with its reviews"
        )
    if mark.environment != EPHEMERAL:
        shown = repr(mark.environment) if mark.environment is not None else "not set"
        raise Refusal(
            f"stack {mark.stack!r} is not marked ephemeral ({KEY_ENVIRONMENT} is {shown}); "
            "`mlops env` only manages stacks it created from the pr-template"
        )


def read_template(path: Path) -> dict[str, Any]:
    """The template stack file's `config:` mapping, refused if it cannot seed a PR stack."""
    if not path.is_file():
        raise Refusal(f"template stack file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise Refusal(f"{path.name}: not valid YAML ({exc})") from None
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise Refusal(f"{path.name}: expected a 'config:' mapping")
    secrets = sorted(k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"})
    if secrets:
        raise Refusal(
            f"{path.name}: {', '.join(secrets)} are secrets encrypted for the template stack and "
            "cannot be copied; set them on the PR stack with `pulumi config set --secret`"
        )
    env = config.get(KEY_ENVIRONMENT)
    if env != EPHEMERAL:
        raise Refusal(
            f"{path.name}: {KEY_ENVIRONMENT} is {env!r}; a PR template must say ephemeral"
        )
    return config


def template_ttl_hours(template: Mapping[str, Any]) -> int:
    section = template.get(KEY_EPHEMERAL)
    value = section.get("ttl_hours") if isinstance(section, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_TTL_HOURS


def pr_config(template: Mapping[str, Any], *, now: datetime, ttl_hours: int) -> dict[str, Any]:
    """The template's config, marked ephemeral, with `expires_at = now + ttl` (UTC, ISO 8601)."""
    config = copy.deepcopy(dict(template))
    config[KEY_ENVIRONMENT] = EPHEMERAL
    section = config.get(KEY_EPHEMERAL)
    section = dict(section) if isinstance(section, dict) else {}
    section["ttl_hours"] = ttl_hours
    section["expires_at"] = format_utc(expires_at(now, ttl_hours))
    config[KEY_EPHEMERAL] = section
    return config


def stack_tags(config: Mapping[str, Any]) -> dict[str, str]:
    section = config.get(KEY_EPHEMERAL)
    tags = {TAG_ENVIRONMENT: str(config.get(KEY_ENVIRONMENT))}
    if isinstance(section, dict) and section.get("expires_at"):
        tags[TAG_EXPIRES_AT] = str(section["expires_at"])
    if config.get(KEY_OWNER):
        tags[TAG_OWNER] = str(config[KEY_OWNER])
    return tags


# --- retries and ordering ----------------------------------------------------------------

# Failures that succeed on a later attempt once AWS catches up: a dependency still being
# torn down (ENIs of a deleted load balancer hold a security group for minutes), a
# conflicting operation in flight, or throttling.
TRANSIENT_PATTERNS: tuple[str, ...] = (
    "DependencyViolation",
    "resource is in use",
    "has dependent object",
    "ResourceInUse",
    "Throttling",
    "Rate exceeded",
    "RequestLimitExceeded",
    "TooManyRequests",
    "OperationAborted",
    "conflicting conditional operation",
    "currently in progress",
    "try again",
)


def is_transient(message: str) -> bool:
    lowered = message.lower()
    return any(pattern.lower() in lowered for pattern in TRANSIENT_PATTERNS)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: tuple[float, ...] = (15.0, 60.0)  # between attempts 1→2 and 2→3

    def delay(self, failed_attempt: int) -> float:
        return self.backoff_s[min(failed_attempt - 1, len(self.backoff_s) - 1)]


def with_retries(
    action: Callable[[], None],
    *,
    what: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
) -> None:
    for attempt in range(1, policy.attempts + 1):
        try:
            action()
            return
        except EngineError as exc:
            if attempt == policy.attempts or not is_transient(str(exc)):
                raise
            delay = policy.delay(attempt)
            say(
                f"{what}: transient failure (attempt {attempt}/{policy.attempts}); "
                f"retrying in {delay:g}s"
            )
            sleep(delay)


def kubernetes_first(resources: list[StateResource]) -> list[str]:
    """URNs to destroy in a first, targeted pass: Kubernetes objects (and the load balancers
    their Services own) must go while the cluster and its network still exist."""
    return [r.urn for r in resources if r.type.startswith("kubernetes:") and not _bookkeeping(r)]


def _bookkeeping(resource: StateResource) -> bool:
    return resource.type == "pulumi:pulumi:Stack" or resource.type.startswith("pulumi:providers:")


def leftovers(resources: list[StateResource]) -> list[StateResource]:
    return [r for r in resources if not _bookkeeping(r)]


# --- operations --------------------------------------------------------------------------


@dataclass
class Env:
    """What every operation needs: the workspace, the clock, output, retry and sleep."""

    workspace: Workspace
    now: datetime
    say: Callable[[str], None]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = field(default=lambda seconds: None)

    @property
    def stream(self) -> OnOutput:
        return lambda line: self.say(line.rstrip("\n"))

    def marking_of(self, stack: str) -> Marking:
        return marking(stack, self.workspace.read_config(stack), self.workspace.read_tags(stack))


def up(env: Env, pr: int, template_path: Path, *, ttl_hours: int | None, dry_run: bool) -> str:
    stack = stack_name(pr)
    template = read_template(template_path)
    ttl = ttl_hours if ttl_hours is not None else template_ttl_hours(template)
    try:
        config = pr_config(template, now=env.now, ttl_hours=ttl)
    except ExpiryError as exc:
        raise Refusal(str(exc)) from None
    exists = stack in env.workspace.list_stacks()
    if exists:
        guard(env.marking_of(stack))
    expiry = config[KEY_EPHEMERAL]["expires_at"]
    verb = "update" if exists else "create"
    if dry_run:
        env.say(f"dry run: would {verb} stack {stack} from {template_path.name}, expiring {expiry}")
        return stack
    env.say(f"{verb} stack {stack} (expires {expiry}, ttl {ttl}h)")
    env.workspace.create_or_select(stack)
    env.workspace.write_config(stack, config)
    env.workspace.set_tags(stack, stack_tags(config))
    env.workspace.up(stack, env.stream)
    env.say(f"stack {stack} is up")
    return stack


@dataclass(frozen=True)
class DestroyOutcome:
    stack: str
    removed: bool
    remaining: tuple[str, ...] = ()


def destroy(env: Env, stack: str, *, dry_run: bool) -> DestroyOutcome:
    """Refresh, destroy Kubernetes objects first, then the rest; `stack rm` only when empty."""
    if stack not in env.workspace.list_stacks():
        raise Refusal(f"stack {stack!r} does not exist in this backend")
    guard(env.marking_of(stack))
    ws = env.workspace
    if dry_run:
        known = leftovers(ws.resources(stack))
        first = kubernetes_first(known)
        env.say(
            f"dry run: would refresh {stack}, destroy {len(first)} Kubernetes object(s) first, "
            f"then the other {len(known) - len(first)} resource(s), then remove the stack"
        )
        return DestroyOutcome(stack, removed=False, remaining=tuple(r.urn for r in known))

    def retried(what: str, action: Callable[[], None]) -> None:
        with_retries(
            action, what=f"{stack}: {what}", policy=env.retry, sleep=env.sleep, say=env.say
        )

    env.say(f"{stack}: refresh")
    retried("refresh", lambda: ws.refresh(stack, env.stream))
    first = kubernetes_first(ws.resources(stack))
    if first:
        env.say(f"{stack}: destroy {len(first)} Kubernetes object(s) first")
        retried("destroy (kubernetes)", lambda: ws.destroy(stack, env.stream, first))
    env.say(f"{stack}: destroy")
    retried("destroy", lambda: ws.destroy(stack, env.stream, None))
    remaining = leftovers(ws.resources(stack))
    if remaining:
        env.say(f"{stack}: {len(remaining)} resource(s) still in state; stack kept")
        return DestroyOutcome(stack, removed=False, remaining=tuple(r.urn for r in remaining))
    ws.remove(stack)
    env.say(f"{stack}: destroyed and removed")
    return DestroyOutcome(stack, removed=True)


@dataclass(frozen=True)
class Row:
    stack: str
    owner: str | None
    expires_at: str | None
    status: str  # "expired", "active", "no expiry", "bad expiry: ..."

    @property
    def expired(self) -> bool:
        return self.status == "expired"


def row(mark: Marking, now: datetime) -> Row:
    try:
        expiry = mark.expiry()
    except ExpiryError as exc:
        return Row(mark.stack, mark.owner, mark.expires_at_raw, f"bad expiry: {exc}")
    if expiry is None:
        return Row(mark.stack, mark.owner, None, "no expiry")
    status = "expired" if is_expired(expiry, now) else "active"
    return Row(mark.stack, mark.owner, format_utc(expiry), status)


def listing(env: Env) -> list[Row]:
    """Ephemeral stacks only; anything else in the backend is none of this command's business."""
    rows = []
    for stack in sorted(env.workspace.list_stacks()):
        mark = env.marking_of(stack)
        if mark.is_ephemeral:
            rows.append(row(mark, env.now))
    return rows


@dataclass(frozen=True)
class ReapResult:
    stack: str
    action: str  # "reaped", "would reap", "kept", "skipped", "failed"
    detail: str


def reap(env: Env, *, dry_run: bool) -> list[ReapResult]:
    results = []
    for item in listing(env):
        if not item.expired:
            action = "skipped" if item.status.startswith(("bad", "no")) else "kept"
            results.append(ReapResult(item.stack, action, item.status))
            continue
        if dry_run:
            results.append(ReapResult(item.stack, "would reap", f"expired at {item.expires_at}"))
            continue
        try:
            outcome = destroy(env, item.stack, dry_run=False)
        except (EngineError, Refusal) as exc:
            results.append(ReapResult(item.stack, "failed", str(exc).strip().splitlines()[-1]))
            continue
        if outcome.removed:
            results.append(ReapResult(item.stack, "reaped", f"expired at {item.expires_at}"))
        else:
            results.append(
                ReapResult(item.stack, "failed", f"{len(outcome.remaining)} resource(s) remain")
            )
    return results
