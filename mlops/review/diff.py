"""Two offline plans → what a `pulumi up` from base to head would do, and why it matters.

Resources are matched by URN. Each change lists its property changes by nested path (JSON
strings such as IAM policies are decoded first, so a path reads
`policy.Statement[1].Action[0]`), is flagged as a replacement when a changed path is in the
replace-forcing table (`replacements.py`), and carries one or more classes:

- data-destructive: data can be lost (a bucket, key, database or registry deleted or
  replaced; versioning suspended; protect or retain removed; force-destroy turned on;
  objects set to expire sooner; database deletion protection or final snapshot dropped);
- security: access broadened or protection removed (new IAM actions or wildcards, trust
  widened, public-access block off, encryption removed or changed, ingress from anywhere,
  public endpoints, IMDSv1, and any newly failing security policy rule);
- serving-impacting: the cluster, its node groups, add-ons, the Kubernetes provider or the
  model server's Deployment/Service/HPA/PDB, and anything under an `mlops:serving:` component;
- cost-impacting: the resource's estimated monthly cost changes, a priced resource comes or
  goes, or a sizing property (instance types, counts, class, scaling) changes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra import policy
from mlops.plan import Plan, PlanResource
from mlops.review import cost
from mlops.review.replacements import REPLACE_ON, path_matches, replacing_paths
from training_jobs import contract

DATA_DESTRUCTIVE = "data-destructive"
SECURITY = "security"
SERVING = "serving-impacting"
COST = "cost-impacting"
CLASSES: tuple[str, ...] = (DATA_DESTRUCTIVE, SECURITY, SERVING, COST)  # by severity
Action = Literal["create", "delete", "update", "replace"]

STATEFUL_TYPES = frozenset(
    {
        "aws:s3/bucket:Bucket",
        "aws:kms/key:Key",
        "aws:rds/instance:Instance",
        "aws:rds/cluster:Cluster",
        "aws:ecr/repository:Repository",
        "aws:efs/fileSystem:FileSystem",
        "aws:dynamodb/table:Table",
        "kubernetes:core/v1:PersistentVolumeClaim",
    }
)
SERVING_TYPES = frozenset(
    {
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:eks/addon:Addon",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        "pulumi:providers:kubernetes",
        "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:Service",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "kubernetes:policy/v1:PodDisruptionBudget",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    }
)
SERVING_COMPONENT_PREFIX = "mlops:serving:"
# Sizing properties: a change is cost-impacting even when the estimate cannot price it.
COST_PATHS = (
    "instanceTypes",
    "instanceType",
    "instanceClass",
    "allocatedStorage",
    "storageType",
    "iops",
    "multiAz",
    "capacityType",
    "scalingConfig",
    "computeResources.instanceTypes",
    "computeResources.maxVcpus",
    "computeResources.minVcpus",
    "computeResources.desiredVcpus",
    "computeResources.type",
    "upgradePolicy.supportType",
    "vpcEndpointType",
    "subnetIds",
)
ENCRYPTION_KEYS = (
    "kmsKeyId",
    "kmsMasterKeyId",
    "kmsKey",
    "keyArn",
    "storageEncrypted",
    "encrypted",
    "sseAlgorithm",
    "encryptionType",
    "encryptionConfig",
    "encryptionConfigurations",
    "serverSideEncryption",
)
_IGNORED_PREFIXES = ("tags", "tagsAll")
# Usage-billed capacity whose coming or going is worth a cost flag (a new ceiling of spend);
# buckets and log groups coming and going are not.
USAGE_CAPACITY_TYPES = frozenset({"aws:batch/computeEnvironment:ComputeEnvironment"})
MISSING: Any = "∅"  # shown for a property that is absent on one side


@dataclass(frozen=True)
class PropertyChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    action: Action
    properties: list[PropertyChange]
    replace_paths: list[str]
    delete_before_replace: bool
    reasons: dict[str, list[str]]  # class → why, in words
    parent: str | None
    dependencies: list[str]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(c for c in CLASSES if self.reasons.get(c))

    @property
    def severity(self) -> int:
        return min((CLASSES.index(c) for c in self.classes), default=len(CLASSES))

    def has(self, cls: str) -> bool:
        return bool(self.reasons.get(cls))


@dataclass(frozen=True)
class ImageRebuild:
    """An image whose sources changed, and the workloads that roll onto the new build."""

    name: str
    context_before: str | None  # the context digests (None: the image is new)
    context_after: str | None
    rolls: list[str]  # names of the job definitions and Deployments taking the new digest

    def describe(self) -> str:
        before = (self.context_before or "none")[:12]
        after = (self.context_after or "none")[:12]
        return f"sources changed (context {before} → {after})"


@dataclass(frozen=True)
class PlanDiff:
    base: Plan
    head: Plan
    changes: list[ResourceChange]
    unchanged: int
    notes: list[str] = field(default_factory=list)
    rebuilds: list[ImageRebuild] = field(default_factory=list)

    def count(self, cls: str) -> int:
        return sum(c.has(cls) for c in self.changes)

    def actions(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        for c in self.changes:
            out[c.action] += 1
        return out

    def with_class(self, cls: str) -> list[ResourceChange]:
        return [c for c in self.changes if c.has(cls)]


class PlanInputError(Exception):
    """A plan file cannot be read; the message names the file and what is wrong."""


def load_plan(path: Path) -> Plan:
    if not path.is_file():
        raise PlanInputError(f"{path}: no such file (make one with `mlops plan --json PATH`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanInputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "resources" not in data or "schema" not in data:
        raise PlanInputError(
            f"{path}: not an mlops plan (expected keys schema, project, stack, resources)"
        )
    try:
        return Plan.from_dict(data)
    except ValueError as exc:
        raise PlanInputError(f"{path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise PlanInputError(f"{path}: not an mlops plan ({exc})") from None


# --------------------------------------------------------------------------------------
# Property paths


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs → {path: leaf}; JSON-encoded strings are decoded and walked."""
    value = _decode(value)
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
    elif prefix:
        out[prefix] = value
    return out


def property_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[PropertyChange]:
    a, b = flatten(dict(before)), flatten(dict(after))
    return [
        PropertyChange(path, a.get(path, MISSING), b.get(path, MISSING))
        for path in sorted(set(a) | set(b))
        if a.get(path, MISSING) != b.get(path, MISSING)
    ]


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _substantive(props: list[PropertyChange]) -> list[PropertyChange]:
    return [p for p in props if _top(p.path) not in _IGNORED_PREFIXES]


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1].split("[", 1)[0]


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(p: PropertyChange) -> str:
    return f"{p.path}: {_short(p.before)} → {_short(p.after)}"


# --------------------------------------------------------------------------------------
# Classification


def _ancestor_types(r: PlanResource, plan: Plan) -> list[str]:
    by_urn = plan.by_urn()
    out, cursor = [], r.parent
    while cursor and cursor in by_urn:
        out.append(by_urn[cursor].type)
        cursor = by_urn[cursor].parent
    return out


def _data_destructive(
    action: Action, old: PlanResource | None, new: PlanResource | None, props: list[PropertyChange]
) -> list[str]:
    r = new or old
    assert r is not None
    why: list[str] = []
    if action in ("delete", "replace") and r.type in STATEFUL_TYPES:
        verb = "deleted" if action == "delete" else "replaced (the new one starts empty)"
        why.append(f"{_kind(r.type)} {verb}")
    if action == "delete" and r.type == "aws:s3/bucketVersioning:BucketVersioning":
        why.append("versioning configuration removed")
    if old is not None and new is not None:
        if old.protect and not new.protect:
            why.append("protect removed")
        if old.retain_on_delete and not new.retain_on_delete and r.type in STATEFUL_TYPES:
            why.append("retain_on_delete removed")
    for p in props if old is not None and new is not None else []:
        leaf = _leaf(p.path)
        if p.path == "versioningConfiguration.status" and p.before == "Enabled":
            why.append(f"versioning turned off ({describe(p)})")
        elif leaf in ("forceDestroy", "forceDelete") and p.after is True and p.before is not True:
            why.append(f"{leaf} turned on")
        elif leaf == "deletionProtection" and p.before is True and p.after is not True:
            why.append("deletion protection turned off")
        elif leaf == "skipFinalSnapshot" and p.after is True and p.before is not True:
            why.append("final snapshot skipped on delete")
        elif leaf in ("days", "noncurrentDays") and "xpiration" in p.path:
            if p.before is MISSING or (
                isinstance(p.before, int) and isinstance(p.after, int) and p.after < p.before
            ):
                why.append(f"objects expire sooner ({describe(p)})")
        elif (
            leaf == "backupRetentionPeriod"
            and isinstance(p.before, int)
            and isinstance(p.after, int)
            and p.after < p.before
        ):
            why.append(f"fewer days of backups ({describe(p)})")
    return why


def _kind(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


# Per-resource rules whose new violation is a security change. Identity rules are not among
# them: IAM documents are compared statement by statement in `_security` instead.
_SECURITY_RULES = tuple(
    r for r in policy.rules_in("security", "resilience") if r.check_stack is None
)


def _rule_messages(r: PlanResource | None, env: str | None) -> set[tuple[str, str]]:
    if r is None:
        return set()
    ctx = policy.Context(policy.environment_of(r.inputs) or env)
    return {
        (rule.id, m)
        for rule in _SECURITY_RULES
        for m in policy.check_resource(rule, r.type, r.inputs, ctx)
    }


def _iam_docs(r: PlanResource | None) -> dict[str, dict[str, Any]]:
    if r is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key in ("policy", "assumeRolePolicy"):
        doc = policy.policy_document(r.inputs.get(key))
        if doc:
            out[key] = doc
    for i, inline in enumerate(r.inputs.get("inlinePolicies") or []):
        doc = policy.policy_document(inline.get("policy")) if isinstance(inline, dict) else None
        if doc:
            out[f"inlinePolicies[{i}]"] = doc
    return out


def _denies(doc: Mapping[str, Any]) -> set[str]:
    return {
        json.dumps(s, sort_keys=True) for s in policy.statements(doc) if s.get("Effect") == "Deny"
    }


def _security(
    action: Action,
    old: PlanResource | None,
    new: PlanResource | None,
    props: list[PropertyChange],
    env: str | None,
) -> list[str]:
    r = new or old
    assert r is not None
    why: list[str] = []
    before_docs, after_docs = _iam_docs(old), _iam_docs(new)
    for key, doc in after_docs.items():
        gained = policy.allowed_pairs(doc) - policy.allowed_pairs(before_docs.get(key))
        if not gained:
            pass
        elif key == "assumeRolePolicy":
            why.append("trust policy grants new principals or actions")
        else:
            stars = sorted({a for a, res in gained if a == "*" or a.endswith(":*")})
            star_res = sorted({a for a, res in gained if res == "*"})
            actions = sorted({a for a, _ in gained})
            if stars:
                why.append(f"IAM wildcard action granted: {', '.join(stars)}")
            if star_res:
                why.append(f"IAM actions on Resource '*': {', '.join(star_res[:8])}")
            if not stars and not star_res:
                shown = ", ".join(actions[:8]) + (" …" if len(actions) > 8 else "")
                why.append(f"{key}: access broadened ({shown})")
        if old is not None and _denies(before_docs.get(key) or {}) - _denies(doc):
            why.append(f"{key}: a Deny statement was removed")
    if action == "create" and r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        why.append(f"attaches {r.inputs.get('policyArn')}")
    if action == "delete" and r.type in (
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPolicy:BucketPolicy",
    ):
        why.append(f"{_kind(r.type)} removed")
    for p in props if old is not None and new is not None else []:
        leaf = _leaf(p.path)
        if leaf in ENCRYPTION_KEYS or any(f".{k}" in f".{p.path}" for k in ENCRYPTION_KEYS):
            verb = "removed" if p.after in (MISSING, None, False, "false") else "changed"
            why.append(f"encryption {verb} ({describe(p)})")
        elif (
            r.type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
            and p.after is not True
        ):
            why.append(f"public access block flag off ({describe(p)})")
        elif leaf == "endpointPublicAccess" and p.after is True:
            why.append("EKS API endpoint made public")
        elif leaf == "publicAccessCidrs" or "publicAccessCidrs[" in p.path:
            if p.after in policy.OPEN_CIDRS:
                why.append(f"EKS public endpoint opened to {p.after}")
        elif leaf == "httpTokens" and p.after != "required":
            why.append(f"IMDSv2 no longer required ({describe(p)})")
        elif leaf == "publiclyAccessible" and p.after is True:
            why.append("database made publicly accessible")
    opened = set(policy.open_ingress(r.type, new.inputs if new else {})) - set(
        policy.open_ingress(r.type, old.inputs if old else {})
    )
    why += [f"security group opened: {o}" for o in sorted(opened)]
    # Anything else a security policy rule now catches on this resource.
    newly = _rule_messages(new, env) - _rule_messages(old if action != "create" else None, env)
    if action == "create":
        newly = _rule_messages(new, env)
    why += [f"{rule}: {m}" for rule, m in sorted(newly) if not any(m in w for w in why)]
    return list(dict.fromkeys(why))


def _serving(r: PlanResource, plan: Plan, props: list[PropertyChange], action: Action) -> list[str]:
    if action == "update" and not _substantive(props):
        return []
    if r.type in SERVING_TYPES:
        return [f"{_kind(r.type)} {action}"]
    for t in _ancestor_types(r, plan):
        if t.startswith(SERVING_COMPONENT_PREFIX):
            return [f"{action} inside {t}"]
    return []


def _monthly(r: PlanResource | None) -> tuple[float, list[str]]:
    if r is None:
        return 0.0, []
    lines, warnings = cost.resource_cost(r)
    return round(sum(line.monthly_usd for line in lines), 2), [
        line.basis for line in lines
    ] + warnings


def _cost(
    action: Action, old: PlanResource | None, new: PlanResource | None, props: list[PropertyChange]
) -> list[str]:
    r = new or old
    assert r is not None
    before, before_basis = _monthly(old if action != "create" else None)
    after, after_basis = _monthly(new if action != "delete" else None)
    why = []
    if before != after:
        why.append(f"monthly ${before:,.2f} → ${after:,.2f} ({after - before:+,.2f})")
    elif before_basis != after_basis and (
        (old is not None and new is not None) or r.type in USAGE_CAPACITY_TYPES
    ):
        why.append("usage-based cost changes: " + "; ".join(after_basis or before_basis)[:160])
    sized = [p for p in props if any(path_matches(p.path, c) for c in COST_PATHS)]
    if sized and not why:
        why.append("sizing changed: " + "; ".join(describe(p) for p in sized[:3]))
    return why


def _classify(
    action: Action,
    old: PlanResource | None,
    new: PlanResource | None,
    props: list[PropertyChange],
    plan_of_r: Plan,
    env: str | None,
) -> dict[str, list[str]]:
    r = new or old
    assert r is not None
    reasons = {
        DATA_DESTRUCTIVE: _data_destructive(action, old, new, props),
        SECURITY: _security(action, old, new, props, env),
        SERVING: _serving(r, plan_of_r, props, action),
        COST: _cost(action, old, new, props),
    }
    return {k: v for k, v in reasons.items() if v}


def _env(plan: Plan) -> str | None:
    env = plan.outputs.get("environment")
    if isinstance(env, str):
        return env
    return policy.stack_environment(policy.resources_from_plan(plan))


def diff_plans(base: Plan, head: Plan) -> PlanDiff:
    b, h = base.by_urn(), head.by_urn()
    env = _env(head) or _env(base)
    changes: list[ResourceChange] = []
    unchanged = 0
    notes = []
    if base.stack != head.stack:
        notes.append(f"comparing different stacks: base {base.stack!r}, head {head.stack!r}")
    for urn in sorted(set(b) | set(h)):
        old, new = b.get(urn), h.get(urn)
        r = new or old
        assert r is not None
        if r.type == "pulumi:pulumi:Stack":
            continue
        props = property_changes(old.inputs if old else {}, new.inputs if new else {})
        action: Action
        replace: list[str] = []
        if old is None:
            action = "create"
        elif new is None:
            action = "delete"
        else:
            options = _option_changes(old, new)
            if not props and not options:
                unchanged += 1
                continue
            props = options + props
            replace = replacing_paths(r.type, [p.path for p in props])
            action = "replace" if replace else "update"
        rule = REPLACE_ON.get(r.type)
        changes.append(
            ResourceChange(
                urn=urn,
                type=r.type,
                name=r.name,
                action=action,
                properties=props,
                replace_paths=replace,
                delete_before_replace=bool(rule and rule.delete_before_replace and replace),
                reasons=_classify(action, old, new, props, head if new else base, env),
                parent=r.parent,
                dependencies=list(r.dependencies),
            )
        )
    changes, rebuilds = _attribute_rebuilds(changes, b, h)
    changes.sort(key=lambda c: (c.severity, c.urn))
    return PlanDiff(base, head, changes, unchanged, notes, rebuilds)


IMAGE_TYPE = "docker-build:index:Image"
_DIGEST_REF = "@sha256:"


def _context(r: PlanResource | None) -> str | None:
    labels = (r.inputs.get("labels") or {}) if r is not None else {}
    value = labels.get(contract.IMAGE_LABEL_CONTEXT_DIGEST)
    return str(value) if value else None


def _attribute_rebuilds(
    changes: list[ResourceChange],
    base: Mapping[str, PlanResource],
    head: Mapping[str, PlanResource],
) -> tuple[list[ResourceChange], list[ImageRebuild]]:
    """Which workloads roll because an image they run was rebuilt from changed sources:
    the workload depends on the image and its image reference changed."""
    images = {c.urn: c for c in changes if c.type == IMAGE_TYPE and c.action != "delete"}
    if not images:
        return changes, []
    rolls: dict[str, list[str]] = {urn: [] for urn in images}
    out = []
    for c in changes:
        sources = [u for u in c.dependencies if u in images]
        moved = any(_DIGEST_REF in str(p.after) for p in c.properties)
        if sources and moved and c.action != "delete":
            for urn in sources:
                rolls[urn].append(c.name)
            image = images[sources[0]]
            why = f"rolls onto image {image.name} rebuilt from changed sources"
            c = dataclasses.replace(
                c, reasons={**c.reasons, SERVING: [*c.reasons.get(SERVING, []), why]}
            )
        out.append(c)
    rebuilds = []
    for urn, image in images.items():
        after = next(r for r in out if r.urn == urn)
        rebuild = ImageRebuild(
            name=image.name,
            context_before=_context(base.get(urn)),
            context_after=_context(head.get(urn)),
            rolls=sorted(rolls[urn]),
        )
        rebuilds.append(rebuild)
        why = rebuild.describe() + (
            f"; rolls {', '.join(rebuild.rolls)}" if rebuild.rolls else "; nothing runs it"
        )
        out[out.index(after)] = dataclasses.replace(
            after, reasons={**after.reasons, SERVING: [*after.reasons.get(SERVING, []), why]}
        )
    return out, rebuilds


def _option_changes(old: PlanResource, new: PlanResource) -> list[PropertyChange]:
    out = []
    if old.protect != new.protect:
        out.append(PropertyChange("(protect)", old.protect, new.protect))
    if old.retain_on_delete != new.retain_on_delete:
        out.append(PropertyChange("(retainOnDelete)", old.retain_on_delete, new.retain_on_delete))
    return out


def parse_classes(text: str) -> list[str]:
    """`data-destructive,security` → classes; ValueError naming the bad value and the allowed."""
    wanted = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in wanted if c not in CLASSES]
    if bad or not wanted:
        raise ValueError(
            f"--fail-on: unknown class {', '.join(map(repr, bad)) or repr(text)}; "
            f"allowed: {', '.join(CLASSES)}"
        )
    return wanted


def render_text(d: PlanDiff) -> str:
    counts = d.actions()
    lines = [
        f"{d.base.stack} → {d.head.stack}: "
        + ", ".join(f"{n} to {a}" for a, n in counts.items())
        + f", {d.unchanged} unchanged",
        "classes: " + ", ".join(f"{c} {d.count(c)}" for c in CLASSES),
        "",
    ]
    for c in d.changes:
        tag = ",".join(c.classes) or "-"
        lines.append(f"{c.action:<8} {c.type}  {c.name}  [{tag}]")
        for cls in c.classes:
            lines += [f"    {cls}: {why}" for why in c.reasons[cls]]
        for p in c.properties[:20]:
            mark = " (forces replacement)" if p.path in c.replace_paths else ""
            lines.append(f"    ~ {describe(p)}{mark}")
    return "\n".join(lines)
