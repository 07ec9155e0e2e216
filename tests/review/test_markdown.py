"""The sticky PR comment: verdict first, severity order, the cap, the graph."""

from __future__ import annotations

import copy
import json
from typing import Any

from mlops.plan import Plan
from mlops.review import markdown
from tests.review.conftest import mutate


def _render(base: Plan, head: Plan, cap: int = markdown.CAP) -> str:
    return markdown.render(markdown.build_review(base, head), cap=cap)


def _mixed_head(prod: Plan) -> Plan:
    def widen(r: dict[str, Any]) -> None:
        doc = json.loads(r["inputs"]["policy"])
        doc["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
        r["inputs"]["policy"] = json.dumps(doc)

    def resize(r: dict[str, Any]) -> None:
        r["inputs"]["scalingConfig"]["desiredSize"] = 5

    def rename(r: dict[str, Any]) -> None:
        r["inputs"]["bucket"] = "mlops-prod-raw-renamed"

    return mutate(
        prod,
        {
            "mlops-prod-raw": rename,
            "mlops-prod-ng-serving": resize,
            "mlops-prod-training-job-policy": widen,
        },
    )


def test_comment_layout(prod: Plan) -> None:
    text = _render(prod, _mixed_head(prod))
    lines = text.splitlines()
    assert lines[0] == markdown.MARKER
    assert lines[1].startswith(
        "**🔴 mlops diff `prod`: needs careful review** — 1 data-destructive, 1 security"
    )
    assert "cost +$280.32/month" in lines[1]
    order = [
        text.index("### 🔴 Data-destructive changes"),
        text.index("### 🟠 Security changes"),
        text.index("### Policy findings new in this change"),
        text.index("### 💲 Estimated monthly cost"),
        text.index("### ⏱️ Time to `pulumi up`"),
        text.index("```mermaid"),
        text.index("<details><summary>Per-resource diff"),
    ]
    assert order == sorted(order)
    destructive = text[order[0] : order[1]]
    assert "**replace** `aws:s3/bucket:Bucket` `mlops-prod-raw`" in destructive
    assert "| MLOPS-IAM-001 | mandatory | critical | `mlops-prod-training-job-policy`" in text
    assert "| compute | $630.72 | $911.04 | +280.32 |" in text
    assert "~ bucket: mlops-prod-raw-f6836b5 → mlops-prod-raw-renamed  # forces replacement" in text
    assert text.rstrip().endswith("</details>")


def test_no_change_verdict(prod: Plan) -> None:
    lines = _render(prod, prod).splitlines()
    assert lines[1].startswith("**⚪ mlops diff `prod`: no changes**")
    assert "```mermaid" not in "\n".join(lines)


def _many_buckets(prod: Plan, n: int) -> tuple[Plan, Plan]:
    data = prod.to_dict()
    template = next(r for r in data["resources"] if r["name"] == "mlops-prod-raw")
    extra = []
    for i in range(n):
        r = copy.deepcopy(template)
        r["name"] = f"mlops-prod-bulk-{i:03d}"
        r["urn"] = template["urn"].replace("::mlops-prod-raw", f"::mlops-prod-bulk-{i:03d}")
        r["inputs"]["bucket"] = f"mlops-prod-bulk-{i:03d}-abcdef0"
        extra.append(r)
    base = Plan.from_dict(data | {"resources": data["resources"] + extra})
    renamed = copy.deepcopy(extra)
    for r in renamed:
        r["inputs"]["bucket"] += "-v2"
        r["inputs"]["forceDestroy"] = True
    head = Plan.from_dict(data | {"resources": data["resources"] + renamed})
    return base, head


def test_500_resource_change_stays_under_the_cap_with_the_verdict_intact(prod: Plan) -> None:
    base, head = _many_buckets(prod, 500)
    text = _render(base, head)
    assert len(text) <= markdown.CAP
    verdict = text.splitlines()[1]
    assert "500 data-destructive" in verdict
    assert "0 to create, 0 to update, 500 to replace, 0 to delete" in verdict
    assert "… and 450 more changes" in text
    assert "✂️ Cut to stay under 60,000 characters: Per-resource diff" in text
    assert "```mermaid" not in text  # 500 nodes is no graph a reviewer can read
    assert text.count("<details>") == text.count("</details>")


def test_a_tiny_cap_cuts_later_sections_first(prod: Plan) -> None:
    text = _render(prod, _mixed_head(prod), cap=2_500)
    assert len(text) <= 2_500
    assert text.splitlines()[1].startswith("**🔴 mlops diff")
    assert "### 🔴 Data-destructive changes" in text
    assert "✂️ Cut to stay under 2,500 characters" in text
    assert "Per-resource diff" in text.split("✂️")[1]


def test_mermaid_graph_has_changed_nodes_and_edges(prod: Plan) -> None:
    review = markdown.build_review(prod, _mixed_head(prod))
    graph = "\n".join(markdown.mermaid(review.diff))
    assert '["replace: mlops-prod-raw"]' in graph
    assert '["mlops-prod-datalake"]' in graph  # the parent, for context
    assert "-.-" in graph  # parent edges
    assert "class " in graph and "classDef data" in graph
