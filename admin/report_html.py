"""A single-file HTML report with inline SVG charts: no scripts, fonts or images to fetch, so it
opens offline, survives being mailed around and cannot leak who reads it."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.tasks.safety import printable
from bot.tasks.stats import LeaderRow, Reliability, Report

WIDTH = 760
PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099")
MAX_POINTS = 400  # more hours than this are drawn per day


def escape(text: object) -> str:
    """Text for the page: control characters removed, then HTML-escaped (quotes too, so the
    same helper is safe in attributes). Worker names and project names are data, never markup."""
    return html.escape(printable(text), quote=True)


def _fmt_num(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _series(hourly: Sequence[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    """Cumulative answers, one point per hour (or per day for long projects), gaps filled."""
    if not hourly:
        return []
    start, end = hourly[0][0], hourly[-1][0]
    step = timedelta(hours=1)
    if (end - start) / step > MAX_POINTS:
        step = timedelta(days=1)
        start = start.replace(hour=0)
    counts: dict[datetime, int] = {}
    for when, n in hourly:
        key = when if step == timedelta(hours=1) else when.replace(hour=0)
        counts[key] = counts.get(key, 0) + n
    out, total, t = [], 0, start
    while t <= end:
        total += counts.get(t, 0)
        out.append((t, total))
        t += step
    return out


def line_chart(points: Sequence[tuple[datetime, int]], *, target: int = 0, height: int = 260, title: str = "") -> str:
    """Cumulative answers over time, with the target as a dashed line."""
    left, right, top, bottom = 56, 16, 28, 36
    w, h = WIDTH - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">']
    parts.append(f'<text x="{left}" y="18" class="t">{escape(title)}</text>')
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle" class="m">no answers yet</text></svg>')
        return "".join(parts)
    y_max = _nice_max(max(max(v for _, v in points), target))
    n = len(points)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(v: float) -> float:
        return top + h - h * v / y_max

    for k in range(5):
        v = y_max * k / 4
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="g"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="a">{_fmt_num(v)}</text>')
    if target:
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(target):.1f}" y2="{y(target):.1f}" class="target"/>')
        parts.append(f'<text x="{left + w}" y="{y(target) - 4:.1f}" text-anchor="end" class="a">target {target:,}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    for i in sorted({0, n // 2, n - 1}):
        label = points[i][0].strftime("%m-%d %H:00")
        parts.append(f'<text x="{x(i):.1f}" y="{top + h + 20}" text-anchor="middle" class="a">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, float]], *, title: str = "", value_fmt: Callable[[float], str] = _fmt_num) -> str:
    """Horizontal bars, one row per item (labels stay readable however many there are)."""
    row, left, top = 22, 170, 28
    height = top + row * max(1, len(items)) + 12
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">']
    parts.append(f'<text x="8" y="18" class="t">{escape(title)}</text>')
    if not items:
        parts.append(f'<text x="{WIDTH / 2}" y="{top + 14}" text-anchor="middle" class="m">nothing yet</text></svg>')
        return "".join(parts)
    v_max = _nice_max(max(v for _, v in items))
    span = WIDTH - left - 70
    for i, (label, value) in enumerate(items):
        y0 = top + i * row
        bar_w = span * value / v_max if v_max else 0
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<text x="{left - 8}" y="{y0 + 15}" text-anchor="end" class="a">{escape(short)}</text>')
        parts.append(f'<rect x="{left}" y="{y0 + 3}" width="{bar_w:.1f}" height="{row - 6}" fill="{PALETTE[0]}" rx="2"/>')
        parts.append(f'<text x="{left + bar_w + 6:.1f}" y="{y0 + 15}" class="a">{escape(value_fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def reliability_chart(curve: Reliability, *, size: int = 320) -> str:
    """Exported confidence (x) against the share right (y) on golden tasks, one dot per
    confidence bin (area ~ labels in it), with the diagonal a calibrated export would follow.
    Dots below the diagonal are over-confident."""
    left, right, top, bottom = 44, 12, 30, 40
    w, h = size - left - right, size - top - bottom
    height = size
    title = f"{curve.project_name}: confidence vs right answers on golden tasks"
    parts = [
        f'<svg class="rel" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="16" class="t">{escape(_short(curve.project_name, 28))} · golden tasks</text>',
    ]
    if not curve.golden:
        parts[0] = parts[0].replace(f"0 0 {size} {height}", f"0 0 {size} 56")
        parts.append(f'<text x="4" y="40" class="a">{escape(curve.note or "no golden answers yet")}</text></svg>')
        return "".join(parts)

    def x(v: float) -> float:
        return left + w * v

    def y(v: float) -> float:
        return top + h - h * v

    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{x(0):.1f}" x2="{x(1):.1f}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="g"/>')
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y(0):.1f}" y2="{y(1):.1f}" class="g"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="a">{v:g}</text>')
        parts.append(f'<text x="{x(v):.1f}" y="{y(0) + 16:.1f}" text-anchor="middle" class="a">{v:g}</text>')
    parts.append(f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}" class="target"/>')
    parts.append(f'<text x="{x(0.5):.1f}" y="{height - 4}" text-anchor="middle" class="a">exported confidence</text>')
    parts.append(f'<text transform="translate(12 {y(0.5):.1f}) rotate(-90)" text-anchor="middle" class="a">share right</text>')
    shown = [b for b in curve.bins if b.n]
    most = max(b.n for b in shown)
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(b.confidence):.1f},{y(b.accuracy):.1f}" for i, b in enumerate(shown))
    parts.append(f'<path d="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>')
    for b in shown:
        r = 3 + 6 * (b.n / most) ** 0.5
        parts.append(
            f'<circle cx="{x(b.confidence):.1f}" cy="{y(b.accuracy):.1f}" r="{r:.1f}" fill="{PALETTE[0]}" fill-opacity="0.75">'
            f"<title>confidence {b.lo:.1f}–{b.hi:.1f}: {b.n} labels, mean {b.confidence:.2f}, right {b.accuracy:.0%}</title></circle>"
        )
    parts.append(
        f'<text x="{x(0.02):.1f}" y="{y(0.93):.1f}" class="a">{curve.golden} golden · ECE {curve.ece:.3f} · {escape(curve.method)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _leader_name(row: LeaderRow, pseudonym: Callable[[int], str] | None) -> str:
    return pseudonym(row.worker_id) if pseudonym else (row.name or f"#{row.worker_id}")


def render(report: Report, *, pseudonym: Callable[[int], str] | None = None, title: str = "crowdpin report") -> str:
    """The whole report as one HTML string. ``pseudonym`` hides worker names (the default in the CLI)."""
    rows = []
    for p in report.projects:
        median = "-" if p.median_seconds is None else f"{p.median_seconds:.1f}s"
        rows.append(
            "<tr>"
            f"<td>{p.id}</td><td>{escape(p.name)}</td><td>{escape(p.type)}</td><td>{escape(p.status)}</td>"
            f"<td>{p.tasks_done:,} / {p.tasks_total:,} ({p.percent_done:.0f}%)</td><td>{p.answers:,}</td>"
            f"<td>{p.answers_last_hour:,}</td><td>{p.answers_per_hour_24h:.1f}</td><td>{median}</td><td>₩{p.earned:,}</td>"
            "</tr>"
        )
    leaders = []
    for i, row in enumerate(report.leaders, start=1):
        acc = "-" if row.golden_accuracy is None else f"{100 * row.golden_accuracy:.0f}% of {row.golden_total}"
        leaders.append(
            f"<tr><td>{i}</td><td>{escape(_leader_name(row, pseudonym))}</td><td>{row.answers:,}</td>"
            f"<td>₩{row.earned:,}</td><td>{acc}</td><td>{row.mean_seconds:.1f}s</td></tr>"
        )
    charts = [
        line_chart(_series(report.hourly), target=report.target_answers, title="Answers collected over time (UTC)"),
        bar_chart([(_leader_name(r, pseudonym), r.answers) for r in report.leaders], title="Answers per worker"),
        bar_chart([(label, n) for label, n in report.seconds_histogram], title="Time per answer"),
    ]
    reliability = "".join(reliability_chart(curve) for curve in report.reliability)
    calibration_section = (
        '<h2>Confidence you can trust</h2>\n<p class="note">Each golden task is scored as a normal task '
        "(its answers cut to a normal task's count, its truth hidden) and compared with the truth. "
        "Dots on the dashed diagonal: a label exported with confidence 0.8 is right 8 times in 10; "
        'below it, the export is over-confident.</p>\n<div class="rels">' + reliability + "</div>"
        if report.reliability
        else ""
    )
    scope = f"project {report.project_id}" if report.project_id is not None else "all projects"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body{{font:14px/1.4 system-ui,-apple-system,"Segoe UI","Apple SD Gothic Neo","Malgun Gothic",sans-serif;margin:24px auto;max-width:800px;color:#222;padding:0 12px}}
table{{border-collapse:collapse;width:100%;margin:8px 0 24px}}th,td{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left}}
th{{background:#f4f4f4}}svg{{width:100%;height:auto;margin:8px 0 16px}}
svg .t{{font-weight:600;font-size:14px}}svg .a{{font-size:11px;fill:#555}}svg .m{{fill:#999}}
svg .g{{stroke:#eee}}svg .target{{stroke:#dc3912;stroke-dasharray:6 4}}
.rels{{display:flex;flex-wrap:wrap;gap:8px}}svg.rel{{width:100%;max-width:360px;margin:4px 0 12px}}.note{{color:#555;font-size:13px}}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{escape(scope)} · generated {report.generated_at.strftime("%Y-%m-%d %H:%M")} UTC</p>
<h2>Progress</h2>
<table><tr><th>id</th><th>project</th><th>type</th><th>status</th><th>done / total</th><th>answers</th><th>last hour</th><th>per hour (24 h)</th><th>median time</th><th>earned</th></tr>
{"".join(rows) or '<tr><td colspan="10">no projects</td></tr>'}
</table>
{charts[0]}
<h2>Workers</h2>
<table><tr><th>#</th><th>worker</th><th>answers</th><th>earned</th><th>golden accuracy</th><th>mean time</th></tr>
{"".join(leaders) or '<tr><td colspan="6">no answers yet</td></tr>'}
</table>
{charts[1]}
<h2>Time per answer</h2>
{charts[2]}
{calibration_section}
</body></html>
"""
