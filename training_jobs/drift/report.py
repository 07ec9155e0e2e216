"""The drift report: a JSON document for machines and one self-contained HTML page for people.

The HTML page has no scripts, fonts or stylesheets from elsewhere: each feature's reference
and current distributions are drawn as inline SVG bars, so the page opens from S3, an
e-mail attachment or an air-gapped laptop alike.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from training_jobs.drift.analysis import FeatureDrift, Histogram, Thresholds

_REFERENCE_COLOUR = "#5b7fa6"
_CURRENT_COLOUR = "#e0823d"
_DRIFT_COLOUR = "#b3261e"


@dataclass(frozen=True)
class ReportContext:
    """What the findings are about."""

    model_name: str
    model_version: str
    run_id: str
    dataset_version: str
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    reference_rows: int
    current_rows: int
    capture_objects: int
    thresholds: Thresholds


def max_finding(findings: Sequence[FeatureDrift]) -> FeatureDrift:
    return max(findings, key=lambda f: f.score)


def report_document(context: ReportContext, findings: Sequence[FeatureDrift]) -> dict[str, Any]:
    top = max_finding(findings)
    return {
        "model": {
            "name": context.model_name,
            "version": context.model_version,
            "run_id": context.run_id,
        },
        "dataset_version": context.dataset_version,
        "window": {
            "start": context.window_start.isoformat(),
            "end": context.window_end.isoformat(),
        },
        "generated_at": context.generated_at.isoformat(),
        "rows": {"reference": context.reference_rows, "current": context.current_rows},
        "capture_objects": context.capture_objects,
        "thresholds": dataclasses.asdict(context.thresholds),
        "drift_detected": any(f.drifted for f in findings),
        "drifted_features": [f.name for f in findings if f.drifted],
        "max_score": {"feature": top.name, "method": top.method, "score": top.score},
        "features": [dataclasses.asdict(f) for f in findings],
    }


def report_json(context: ReportContext, findings: Sequence[FeatureDrift]) -> bytes:
    return json.dumps(report_document(context, findings), indent=2, allow_nan=False).encode()


# --- HTML ----------------------------------------------------------------------------------


def _svg_histogram(histogram: Histogram, *, width: int = 720, height: int = 200) -> str:
    left, right, top, bottom = 44, 8, 10, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    bars = len(histogram.labels)
    peak = max([*histogram.reference, *histogram.current, 1e-12])
    slot = plot_w / max(bars, 1)
    bar_w = max(slot * 0.4, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10">{peak:.0%}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">0%</text>',
    ]
    label_every = max(1, bars // 8)
    for i, label in enumerate(histogram.labels):
        x = left + i * slot + slot * 0.1
        for offset, share, colour, side in (
            (0.0, histogram.reference[i], _REFERENCE_COLOUR, "reference"),
            (bar_w, histogram.current[i], _CURRENT_COLOUR, "current"),
        ):
            h = plot_h * share / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(label)} {side}: '
                f"{share:.2%}</title></rect>"
            )
        if i % label_every == 0:
            cx = x + bar_w
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {top + plot_h + 14})">'
                f"{html.escape(label[:18])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)


def _feature_section(finding: FeatureDrift) -> str:
    verdict = (
        f'<strong style="color:{_DRIFT_COLOUR}">drift</strong>' if finding.drifted else "no drift"
    )
    score = f"{finding.method} {finding.score:.4f} (threshold {finding.threshold:g})"
    details = [
        f"PSI {finding.psi:.4f}",
        f"rows {finding.reference_rows:,} reference / {finding.current_rows:,} current",
        f"missing {finding.reference_missing:,} / {finding.current_missing:,}",
    ]
    if finding.kind == "numeric":
        details.append(
            f"mean {_fmt(finding.reference_mean)} → {_fmt(finding.current_mean)}, "
            f"std {_fmt(finding.reference_std)} → {_fmt(finding.current_std)}"
        )
    if finding.unseen_categories:
        unseen = ", ".join(f"{k} ({v:,})" for k, v in finding.unseen_categories.items())
        details.append(f"unseen categories: {unseen}")
    name = html.escape(finding.name)
    return (
        f'<section id="f-{name}"><h2>{name} <small>{finding.kind}</small></h2>'
        f"<p>{html.escape(score)} — {verdict}</p>"
        f"<p>{html.escape(' · '.join(details))}</p>"
        f"{_svg_histogram(finding.histogram)}</section>"
    )


def report_html(context: ReportContext, findings: Sequence[FeatureDrift]) -> bytes:
    drifted = [f for f in findings if f.drifted]
    top = max_finding(findings)
    headline = (
        f"Drift in {len(drifted)} of {len(findings)} features"
        if drifted
        else f"No drift in {len(findings)} features"
    )
    rows = "".join(
        f'<tr{" class=drift" if f.drifted else ""}><td><a href="#f-{html.escape(f.name)}">'
        f"{html.escape(f.name)}</a></td><td>{f.kind}</td><td>{f.method}</td>"
        f"<td>{f.score:.4f}</td><td>{f.threshold:g}</td><td>{'yes' if f.drifted else 'no'}</td>"
        f"<td>{f.psi:.4f}</td><td>{f.current_missing:,}</td>"
        f"<td>{sum(f.unseen_categories.values()):,}</td></tr>"
        for f in sorted(findings, key=lambda f: -f.score)
    )
    title = f"Drift report — {context.model_name} v{context.model_version}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 980px; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.drift td {{ color: {_DRIFT_COLOUR}; font-weight: 600; }}
section {{ margin-top: 1.5em; border-top: 1px solid #ddd; }} small {{ color: #777; }}
.key span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p><strong>{headline}</strong>; largest: {html.escape(top.name)} {top.method} {top.score:.4f}.</p>
<p>Window {html.escape(context.window_start.isoformat())} to
{html.escape(context.window_end.isoformat())}: {context.current_rows:,} captured rows from
{context.capture_objects:,} objects, against {context.reference_rows:,} training rows of dataset
{html.escape(context.dataset_version[:16])} (run {html.escape(context.run_id)}).
Generated {html.escape(context.generated_at.isoformat())}.</p>
<p class="key"><span style="background:{_REFERENCE_COLOUR}"></span>reference
<span style="background:{_CURRENT_COLOUR}"></span>current</p>
<table><thead><tr><th>feature</th><th>kind</th><th>method</th><th>score</th><th>threshold</th>
<th>drift</th><th>PSI</th><th>missing</th><th>unseen</th></tr></thead><tbody>{rows}</tbody></table>
{"".join(_feature_section(f) for f in findings)}
</body></html>
"""
    return page.encode()
