"""The fee report as one self-contained HTML file: plotly charts (plotly.js inlined once, no network) and the
report's tables. :func:`render_html` is pure; :func:`html_report` reads the reports it needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape

from sqlmodel import Session

from recovery.units import duration_text
from services.fee_report import FeeGroup, FeeReport, fee_report, sum_usd

MONEY = (
    ("recovered", "recovered"),
    ("fees_charged", "fees charged"),
    ("waived", "waived"),
    ("fees_refunded", "fee refunds"),
    ("compensated", "compensation"),
    ("gas_charged", "gas charged"),
    ("gas_spent", "gas spent"),
    ("quoted_not_charged", "quoted, not charged"),
)
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #1f2933; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, 650px); gap: 12px; }
table { border-collapse: collapse; font-size: 12px; margin-top: 8px; }
th, td { border: 1px solid #d9e2ec; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f4f8; } td.k { text-align: left; } tr.total td { font-weight: bold; background: #f7f9fb; }
p.note { font-size: 12px; color: #52606d; max-width: 1000px; }
"""


def _num(value: Decimal) -> str:
    """A USD figure for a chart: its exact decimal text (plotly.js reads numeric strings on a linear axis)."""
    return str(value)


def _chart(figure_json: dict[str, object], first: bool) -> str:
    import plotly.graph_objects as go

    figure = go.Figure(figure_json)
    figure.update_layout(width=640, height=360, margin={"l": 60, "r": 20, "t": 50, "b": 60}, template="plotly_white")
    html: str = figure.to_html(
        include_plotlyjs=first,
        full_html=False,
        config={"displaylogo": False},
    )
    return html


def _bars(title: str, x: Sequence[str], series: Sequence[tuple[str, Sequence[Decimal]]]) -> dict[str, object]:
    return {
        "data": [
            {"type": "bar", "name": name, "x": list(x), "y": [_num(v) for v in values]} for name, values in series
        ],
        "layout": {"title": {"text": title}, "barmode": "group", "yaxis": {"title": {"text": "USD"}, "type": "linear"}},
    }


def _label(group: FeeGroup, dims: Sequence[str]) -> str:
    return " / ".join(group.key.get(d) or "-" for d in dims) or "all"


def charts(report: FeeReport, by_day: FeeReport, by_pattern: FeeReport) -> list[dict[str, object]]:
    days = [_label(g, ["day"]) for g in by_day.groups]
    patterns = [_label(g, ["pattern"]) for g in by_pattern.groups]
    chains = sorted({line.chain for line in report.total.lines})

    def per_chain(measure: str) -> list[Decimal]:
        return [
            sum_usd(getattr(line, f"{measure}_usd") for line in report.total.lines if line.chain == chain)
            for chain in chains
        ]

    return [
        _bars("Fees charged by day", days, [("fees charged", [g.fees_charged_usd for g in by_day.groups])]),
        _bars("Fees charged by pattern", patterns, [("fees charged", [g.fees_charged_usd for g in by_pattern.groups])]),
        _bars(
            "Charged vs waived, by pattern",
            patterns,
            [
                ("charged", [g.fees_charged_usd for g in by_pattern.groups]),
                ("waived", [g.waived_usd for g in by_pattern.groups]),
                ("fee refunds", [g.fees_refunded_usd for g in by_pattern.groups]),
            ],
        ),
        _bars(
            "Gas charged vs gas spent, by chain (USD at the booked prices)",
            chains,
            [("gas charged", per_chain("gas_charged")), ("gas spent", per_chain("gas_spent"))],
        ),
    ]


def key_cells(group: FeeGroup, group_by: Sequence[str], is_total: bool) -> list[str]:
    """A group's key as table cells; "total" for the period's total."""
    if is_total:
        return ["total"] + [""] * (len(group_by) - 1)
    return [group.key[d] or "-" for d in group_by]


def _groups_table(report: FeeReport) -> str:
    head = [*report.group_by, "cases", *(f"{label} (USD)" for _, label in MONEY)]
    head += ["quoted cases", "automatic", "manual", "resolution avg", "resolution p90"]
    head += ["recon ok", "mismatch", "uncheckable", "unchecked", "unpriced rows"]
    rows = []
    for group in [*report.groups, report.total] if report.group_by else [report.total]:
        is_total = group is report.total
        keys = key_cells(group, report.group_by, is_total)
        cells = [f'<td class="k">{escape(k)}</td>' for k in keys]
        values = [str(group.cases), *(f"{getattr(group, f'{m}_usd'):,.2f}" for m, _ in MONEY)]
        values += [
            str(group.quoted_not_charged_cases),
            f"{group.automatic} ({group.automatic_share_pct or 0}%)",
            f"{group.manual} ({group.manual_share_pct or 0}%)",
            duration_text(group.resolution_avg_s),
            duration_text(group.resolution_p90_s),
        ]
        values += [
            str(v)
            for v in (
                group.recon_ok,
                group.recon_mismatch,
                group.recon_uncheckable,
                group.recon_unchecked,
                group.usd_unpriced_rows,
            )
        ]
        cells += [f"<td>{escape(v)}</td>" for v in values]
        rows.append(f"<tr{' class=total' if is_total else ''}>{''.join(cells)}</tr>")
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table id="groups"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _lines_table(report: FeeReport) -> str:
    keys = [d for d in report.group_by if d not in ("chain", "asset")]
    head = [*keys, "chain", "asset", "decimals", "cases", *(label for _, label in MONEY)]
    rows = []
    for group in report.groups:
        for line in group.lines:
            cells = [f'<td class="k">{escape(group.key[d] or "-")}</td>' for d in keys]
            cells += [f'<td class="k">{escape(line.chain)}</td>', f'<td class="k">{escape(line.asset)}</td>']
            values = ["-" if line.decimals is None else str(line.decimals), str(line.cases)]
            values += [line.display(m) for m, _ in MONEY]
            cells += [f"<td>{escape(v)}</td>" for v in values]
            rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table id="lines"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_html(report: FeeReport, *, by_day: FeeReport, by_pattern: FeeReport, generated_at: datetime) -> str:
    """One HTML document: four charts (fees by day, by pattern, charged vs waived, gas charged vs spent) and
    the report's tables. plotly.js is inlined once (about 4.8 MB); nothing is fetched when it opens."""
    period = f"{report.period_from:%Y-%m-%d} to {report.period_to:%Y-%m-%d} (UTC, the end excluded)"
    figures = "".join(
        f'<div class="chart">{_chart(figure, first=(i == 0))}</div>'
        for i, figure in enumerate(charts(report, by_day, by_pattern))
    )
    grouping = ", ".join(report.group_by) or "nothing (the whole period)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fee report {escape(period)}</title>
<style>{STYLE}</style></head>
<body>
<h1>Fee report, {escape(period)}</h1>
<p class="note">Generated {generated_at:%Y-%m-%d %H:%M} UTC. Grouped by {escape(grouping)}. USD at the prices booked
with each ledger row; amounts in the asset tables are in the asset's own units and are never added across assets.
Gas spent is in the chain's native coin. See docs/finance.md for what each column means.</p>
<div class="charts">{figures}</div>
<h2>Groups (USD)</h2>
{_groups_table(report)}
<h2>Per asset (the asset's units)</h2>
{_lines_table(report)}
</body></html>
"""


def html_report(
    session: Session, *, start: datetime, end: datetime, group_by: Sequence[str], generated_at: datetime
) -> str:
    """The HTML report: the report as grouped, and by day and by pattern for the charts."""
    report = fee_report(session, start=start, end=end, group_by=group_by)
    by_day = (
        report if tuple(report.group_by) == ("day",) else fee_report(session, start=start, end=end, group_by=["day"])
    )
    by_pattern = (
        report
        if tuple(report.group_by) == ("pattern",)
        else fee_report(session, start=start, end=end, group_by=["pattern"])
    )
    return render_html(report, by_day=by_day, by_pattern=by_pattern, generated_at=generated_at)
