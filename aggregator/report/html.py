"""The batch report as one self-contained HTML page (inline CSS and SVG plots)."""

from __future__ import annotations

import math
from html import escape

from aggregator.api.records_schemas import SignatureView
from aggregator.api.schemas import PlotSeries
from aggregator.report.content import Report, Table, utc

STYLE = """
body{font-family:sans-serif;margin:2em;color:#111;max-width:60em}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
td,th{border:1px solid #bbb;padding:.2em .4em;text-align:left;vertical-align:top;font-size:90%}
th{background:#eee} pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}
.released{background:#e3f5e3;border:2px solid #2a7a2a;padding:.5em}
.unreleased{background:#fff4d6;border:2px solid #a77b00;padding:.5em}
.invalid{color:#b00020;font-weight:bold} svg{border:1px solid #ccc;margin-bottom:1em}
"""
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def release_line(report: Report) -> str:
    if not report.released_by:
        return "NOT RELEASED: this run has no released signature"
    s = report.released_by[0]
    state = "" if s.valid else " (SIGNATURE INVALID: the record changed since)"
    return f"RELEASED by {s.full_name} ({s.user}) at {s.time_utc}{state}"


def manifestation(s: SignatureView) -> str:
    """Printed name, UTC time and meaning, as 21 CFR 11.50 asks to be shown with the record."""
    return f"{s.full_name} ({s.user}), {s.time_utc}, {s.meaning}"


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    more = f"<p>{table.omitted} more rows not shown.</p>" if table.omitted else ""
    if not table.rows:
        body = f'<tr><td colspan="{len(table.columns)}">none</td></tr>'
    return f"<h2>{escape(table.title)}</h2><table><tr>{head}</tr>{body}</table>{more}"


def signature_table(
    title: str, signatures: list[SignatureView], *, sha256_chars: int | None = None
) -> Table:
    """The signatures as the report shows them, HTML and PDF alike; the PDF's narrow column
    shows only the start of each SHA-256 (`sha256_chars`)."""
    rows = [
        [
            s.meaning,
            s.full_name,
            s.user,
            s.time_utc,
            s.comment,
            s.sha256 if sha256_chars is None else s.sha256[:sha256_chars] + "...",
            "valid" if s.valid else f"INVALID: {s.reason}",
        ]
        for s in signatures
    ]
    return Table(
        title, ["Meaning", "Printed name", "User", "UTC", "Comment", "SHA-256", "Now"], rows
    )


def _signatures(title: str, signatures: list[SignatureView]) -> str:
    return _table(signature_table(title, signatures))


def numeric(series: PlotSeries) -> list[tuple[float, float]]:
    out = []
    for x, v in zip(series.run_time, series.v, strict=False):
        if (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ) or isinstance(v, bool):
            out.append((float(x), float(v)))
    return out


def _svg(label: str, series: list[PlotSeries], width: int = 720, height: int = 180) -> str:
    points = {s.tag: numeric(s) for s in series}
    every = [p for pts in points.values() for p in pts]
    if not every:
        return f"<p>{escape(label)}: no numeric samples</p>"
    x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
    y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pad = 40
    lines, legend = [], []
    for i, (tag, pts) in enumerate(points.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(
            f"{pad + (x - x0) / (x1 - x0) * (width - 2 * pad):.1f},"
            f"{height - pad / 2 - (y - y0) / (y1 - y0) * (height - pad):.1f}"
            for x, y in pts
        )
        lines.append(f'<polyline fill="none" stroke="{color}" points="{coords}"/>')
        legend.append(f'<tspan fill="{color}">{escape(tag)} </tspan>')
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f'<text x="4" y="14" font-size="12">{escape(label)}: {"".join(legend)}</text>'
        f'<text x="4" y="{height - 4}" font-size="10">run time {x0:.0f}-{x1:.0f} s; '
        f"y {y0:.4g}-{y1:.4g}</text>{''.join(lines)}</svg>"
    )


def render_html(report: Report) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Batch report "
        f"{escape(report.run_id)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Batch report: run {escape(report.run_id)}</h1>",
        f'<p class="{"released" if report.released_by else "unreleased"}">'
        f"{escape(release_line(report))}</p>",
        "<table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in report.facts)
        + "</table>",
        "<h2>Method as run</h2>",
    ]
    if report.source is not None:
        src = report.source
        parts.append(
            f"<p>Library method <b>{escape(src.name)}</b> version {src.version} "
            f"(now {escape(src.state)}).</p>"
        )
        parts.append(_signatures("Method approval signatures", src.approvals))
    else:
        parts.append("<p>Not a method library version.</p>")
    for m in report.methods:
        parts.append(
            f"<h3>Version {m.version}, {utc(m.time)} by {escape(m.user or '-')}</h3>"
            f"<pre>{escape(m.text)}</pre>"
        )
    parts.append("<h2>Plots</h2>")
    if report.plot is not None:
        by_tag = {s.tag: s for s in report.plot.series}
        for label, tags in report.plot_groups:
            parts.append(_svg(label, [by_tag[t] for t in tags if t in by_tag]))
    parts.extend(_table(t) for t in report.tables)
    parts.append(_signatures("Signatures on this run", report.signatures))
    parts.append(f"<p>Report generated {utc(report.generated)}.</p></body></html>")
    return "".join(parts)
