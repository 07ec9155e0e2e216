"""The sticky pull-request comment: one verdict line, then what a reviewer must read first.

Order: verdict (never truncated), data-destructive changes, security changes, policy
findings new in head, the cost delta, the time-to-up change, a Mermaid graph of the changed
resources, then the per-resource diff in a collapsed `<details>`. The whole comment stays
under `CAP` characters (GitHub refuses comments over 65,536); when it would not, the later
sections are cut first and a closing note says what was cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from infra import policy
from mlops.plan import Plan
from mlops.review import cost, timing
from mlops.review.diff import (
    CLASSES,
    COST,
    DATA_DESTRUCTIVE,
    SECURITY,
    SERVING,
    PlanDiff,
    ResourceChange,
    describe,
    diff_plans,
)

MARKER = "<!-- mlops-diff -->"
FENCE = "`" * 3
CAP = 60_000
LIST_LIMIT = 50  # items per list section before "… and N more"
PROPS_PER_RESOURCE = 25
MERMAID_MAX_NODES = 40
_ICON = {DATA_DESTRUCTIVE: "🔴", SECURITY: "🟠", SERVING: "🟡", COST: "💲"}


@dataclass(frozen=True)
class Review:
    diff: PlanDiff
    base_findings: list[policy.Finding]
    head_findings: list[policy.Finding]
    base_cost: cost.CostEstimate
    head_cost: cost.CostEstimate
    base_time: timing.CriticalPath
    head_time: timing.CriticalPath

    @property
    def new_findings(self) -> list[policy.Finding]:
        seen = {f.key() for f in self.base_findings}
        return [f for f in self.head_findings if f.key() not in seen and f.excepted is None]

    @property
    def resolved_findings(self) -> list[policy.Finding]:
        now = {f.key() for f in self.head_findings}
        return [f for f in self.base_findings if f.key() not in now]


def build_review(
    base: Plan, head: Plan, exceptions: Sequence[policy.PolicyException] = ()
) -> Review:
    def findings(plan: Plan) -> list[policy.Finding]:
        return policy.evaluate(policy.resources_from_plan(plan), exceptions=exceptions)

    base_cost, head_cost = cost.estimate(base), cost.estimate(head)
    return Review(
        diff_plans(base, head),
        findings(base),
        findings(head),
        base_cost,
        head_cost,
        timing.critical_path(base),
        timing.critical_path(head),
    )


def _code(text: object) -> str:
    s = str(text).replace("`", "'").replace("\n", " ")
    return f"`{s}`"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict(review: Review) -> str:
    d = review.diff
    a = d.actions()
    new_mandatory = sum(f.enforcement == "mandatory" for f in review.new_findings)
    delta = cost.delta(review.base_cost, review.head_cost)
    if not d.changes:
        icon, word = "⚪", "no changes"
    elif d.count(DATA_DESTRUCTIVE) or d.count(SECURITY) or new_mandatory:
        icon, word = "🔴", "needs careful review"
    elif d.count(SERVING) or d.count(COST):
        icon, word = "🟡", "review"
    else:
        icon, word = "🟢", "low risk"
    parts = [
        ", ".join(f"{d.count(c)} {c}" for c in CLASSES),
        f"{a['create']} to create, {a['update']} to update, {a['replace']} to replace, "
        f"{a['delete']} to delete",
        f"{new_mandatory} new mandatory policy violation(s)",
        f"cost {_money(delta.delta)}/month",
        f"up {review.base_time.human()} → {review.head_time.human()}",
    ]
    return f"**{icon} mlops diff `{d.head.stack}`: {word}** — " + " · ".join(parts)


@dataclass
class Section:
    title: str
    items: list[str]
    head: list[str] = field(default_factory=list)  # always with the section when it shows
    tail: list[str] = field(default_factory=list)
    empty: str = ""


def _change_line(c: ResourceChange, cls: str) -> str:
    dbr = " (delete-before-replace)" if c.delete_before_replace else ""
    reasons = "; ".join(c.reasons[cls])
    return f"- **{c.action}**{dbr} {_code(c.type)} {_code(c.name)}: {_cell(reasons)}"


def _limited(items: list[str], what: str) -> list[str]:
    if len(items) <= LIST_LIMIT:
        return items
    rest = len(items) - LIST_LIMIT
    return [*items[:LIST_LIMIT], f"- … and {rest} more {what} (full list in the artifact)"]


def _sections(review: Review) -> list[Section]:
    d = review.diff
    out = [
        Section(
            "### 🔴 Data-destructive changes",
            _limited(
                [_change_line(c, DATA_DESTRUCTIVE) for c in d.with_class(DATA_DESTRUCTIVE)],
                "changes",
            ),
            empty="None.",
        ),
        Section(
            "### 🟠 Security changes",
            _limited([_change_line(c, SECURITY) for c in d.with_class(SECURITY)], "changes"),
            empty="None.",
        ),
    ]
    rebuilt = [
        f"- {_code(r.name)}: {_cell(r.describe())} → rolls "
        + (", ".join(_code(n) for n in r.rolls) or "nothing")
        for r in d.rebuilds
    ]
    if rebuilt:
        out.append(Section("### 🔁 Images rebuilt, and the workloads that roll", rebuilt))
    new = review.new_findings
    rows = [
        f"| {f.rule_id} | {f.enforcement} | {f.severity} | {_code(f.name)} | {_cell(f.message)} |"
        for f in new
    ]
    resolved = review.resolved_findings
    out.append(
        Section(
            "### Policy findings new in this change",
            _limited(rows, "findings"),
            head=["| rule | enforcement | severity | resource | finding |", "|---|---|---|---|---|"]
            if rows
            else [],
            tail=[f"Resolved by this change: {len(resolved)}."] if resolved else [],
            empty=f"No new findings ({len(review.head_findings)} in head, "
            f"{sum(f.blocking for f in review.head_findings)} blocking).",
        )
    )
    delta = cost.delta(review.base_cost, review.head_cost)
    cost_rows = [
        f"| {cat} | ${b:,.2f} | ${h:,.2f} | {h - b:+,.2f} |"
        for cat, b, h in delta.by_category
        if b or h
    ]
    cost_rows.append(
        f"| **total** | **${delta.base_total:,.2f}** | **${delta.head_total:,.2f}** "
        f"| **{delta.delta:+,.2f}** |"
    )
    out.append(
        Section(
            "### 💲 Estimated monthly cost (fixed costs, us-east-1 list prices)",
            cost_rows,
            head=["| category | base | head | Δ |", "|---|---:|---:|---:|"],
            tail=[
                *(f"> ⚠️ {w}" for w in delta.warnings),
                "",
                f"_{cost.ASSUMPTIONS[0]} {cost.ASSUMPTIONS[1]} Usage-billed items are excluded._",
            ],
        )
    )
    out.append(
        Section(
            "### ⏱️ Time to `pulumi up` from scratch",
            [
                f"{review.base_time.human()} → **{review.head_time.human()}** "
                f"({review.head_time.seconds - review.base_time.seconds:+.0f} s)",
                "",
                "Critical path (head): "
                + " → ".join(
                    f"{_code(u.rsplit('::', 1)[-1])} {timing.format_duration(s)}"
                    for u, s in review.head_time.path
                ),
            ],
        )
    )
    graph = mermaid(d)
    if graph:
        out.append(Section("### Changed resources", graph))
    details = []
    for c in d.changes:
        tag = ", ".join(c.classes) or "no class"
        lines = [f"**{c.action}** {_code(c.type)} {_code(c.name)} — {tag}", "```diff"]
        for p in c.properties[:PROPS_PER_RESOURCE]:
            mark = "  # forces replacement" if p.path in c.replace_paths else ""
            sign = "+" if c.action == "create" else "-" if c.action == "delete" else "~"
            text = describe(p).replace(FENCE, "\u2019" * 3)
            lines.append(f"{sign} {text}{mark}")
        if len(c.properties) > PROPS_PER_RESOURCE:
            lines.append(f"  … {len(c.properties) - PROPS_PER_RESOURCE} more properties")
        lines += ["```", ""]
        details.append("\n".join(lines))
    out.append(
        Section(
            f"<details><summary>Per-resource diff ({len(d.changes)} changes, "
            f"{d.unchanged} unchanged)</summary>\n",
            details,
            tail=["</details>"],
            empty="No resource changes.",
        )
    )
    return out


def mermaid(d: PlanDiff) -> list[str]:
    """A flowchart of changed resources and their parents; empty when too big to read."""
    changed = {c.urn: c for c in d.changes}
    nodes: dict[str, str] = {}
    for c in d.changes:
        nodes[c.urn] = c.name
        if c.parent and "pulumi:pulumi:Stack" not in c.parent:
            nodes.setdefault(c.parent, c.parent.rsplit("::", 1)[-1])
    if not nodes or len(nodes) > MERMAID_MAX_NODES:
        return []
    ids = {urn: f"n{i}" for i, urn in enumerate(sorted(nodes))}
    lines = ["```mermaid", "flowchart LR"]
    for urn in sorted(nodes):
        label = nodes[urn].replace('"', "'")
        node = changed.get(urn)
        if node is None:
            lines.append(f'  {ids[urn]}["{label}"]')
            continue
        lines.append(f'  {ids[urn]}["{node.action}: {label}"]')
        if node.classes:
            lines.append(f"  class {ids[urn]} {node.classes[0].split('-')[0]}")
    for c in d.changes:
        if c.parent in ids:
            lines.append(f"  {ids[c.parent]} -.- {ids[c.urn]}")
        for dep in sorted(set(c.dependencies)):
            if dep in ids and dep != c.parent:
                lines.append(f"  {ids[dep]} --> {ids[c.urn]}")
    lines += [
        "  classDef data fill:#f8d0d0,stroke:#c00",
        "  classDef security fill:#fde2c4,stroke:#d60",
        "  classDef serving fill:#fff3b0,stroke:#a80",
        "  classDef cost fill:#d6ecff,stroke:#06c",
        "```",
    ]
    return lines


def render(review: Review, cap: int = CAP) -> str:
    top = [MARKER, verdict(review), ""]
    if review.diff.notes:
        top += [f"> {n}" for n in review.diff.notes] + [""]
    body = "\n".join(top) + "\n"
    reserve = 400  # room for the note on what was cut
    cut: list[str] = []
    for s in _sections(review):
        items = s.items or ([s.empty] if s.empty else [])
        block_head = "\n".join([s.title, *s.head]) + "\n"
        block_tail = "\n".join(s.tail) + "\n" if s.tail else ""
        fixed = len(block_head) + len(block_tail) + 1
        if len(body) + fixed + reserve > cap:
            cut.append(f"{_plain_title(s.title)} (all {len(s.items)})")
            continue
        kept: list[str] = []
        used = len(body) + fixed + reserve
        for item in items:
            if used + len(item) + 1 > cap:
                break
            kept.append(item)
            used += len(item) + 1
        if len(kept) < len(items):
            cut.append(f"{_plain_title(s.title)} ({len(items) - len(kept)} of {len(items)})")
        if s.items and not kept and s.title.startswith("### Changed"):
            continue
        body += block_head + "\n".join(kept) + "\n" + block_tail + "\n"
    if cut:
        body += (
            "> ✂️ Cut to stay under "
            f"{cap:,} characters: {'; '.join(cut)}. Run `mlops diff BASE.json HEAD.json` "
            "or download the workflow artifact for the full diff.\n"
        )
    return body


def _money(usd: float) -> str:
    return f"{'-' if usd < 0 else '+'}${abs(usd):,.2f}"


def _plain_title(title: str) -> str:
    text = title.split("\n", 1)[0]
    for junk in ("<details><summary>", "</summary>", "### ", "🔴 ", "🟠 ", "💲 ", "⏱️ ", "🔁 "):
        text = text.replace(junk, "")
    return text.strip()
