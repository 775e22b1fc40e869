"""Markdown for the gateway section: per-cell tables, ratios, targets, the soak."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.loadgen import RunStats, median

if TYPE_CHECKING:
    from bench.gateway import Cell, Results

ORDER = ("direct", "minimal proxy", "helexa", "LiteLLM")
MS = 1000.0
TARGET_CLIENTS = 32
MIB = 1024 * 1024


@dataclass(frozen=True)
class Summary:
    """One contestant in one cell over all rounds: medians and the best round."""

    rps: float
    rps_best: float
    p50: float
    p50_best: float
    p99: float
    ttfc: float
    ttfc_best: float
    errors: int

    @staticmethod
    def of(runs: Sequence[RunStats]) -> Summary:
        def agg(pick: Callable[[RunStats], float]) -> tuple[float, float]:
            values = [pick(r) for r in runs]
            return median(values), min(values)

        p50, p50_best = agg(lambda r: r.latency(0.5))
        ttfc, ttfc_best = agg(lambda r: r.ttfc(0.5))
        return Summary(
            rps=median([r.rps for r in runs]),
            rps_best=max(r.rps for r in runs),
            p50=p50,
            p50_best=p50_best,
            p99=median([r.latency(0.99) for r in runs]),
            ttfc=ttfc,
            ttfc_best=ttfc_best,
            errors=sum(r.errors for r in runs),
        )


def _ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * MS:.1f}"  # NaN: not measured


def render(results: Results, cells: Sequence[Cell], quick: bool) -> str:
    summaries = {key: Summary.of(runs) for key, runs in results.runs.items()}
    lines = [
        "## Gateway overhead (scenarios 1, 2 and 6)",
        "",
        "Closed-loop clients (bench/loadgen.py: raw asyncio, one keep-alive connection per "
        f"client), {results.seconds:g} s per run, "
        f"{results.rounds} interleaved round(s) per cell; stub OpenAI upstream "
        "(bench/upstream.py: a raw asyncio server, 20 content chunks per stream, sent "
        "chunked) in its own process; helexa = "
        '`helexa serve` with the stub as a `kind = "openai"` neuron; minimal proxy = '
        "starlette + one aiohttp session; LiteLLM = its proxy, 1 worker, no database, no "
        "callbacks. `req/s` is the median round (best round in brackets); latencies are "
        "medians over rounds of each round's percentile. TTFC = time to the first body chunk.",
        "",
    ]
    if results.load_average:
        before, after = (", ".join(f"{x:.1f}" for x in load) for load in results.load_average)
        lines += [f"Load average before the runs: {before}; after: {after}.", ""]
    if results.litellm_note:
        lines += [f"LiteLLM: _{results.litellm_note}_", ""]
    lines += [
        "| cell | contestant | req/s (best) | p50 ms | p99 ms | TTFC p50 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        for name in ORDER:
            s = summaries.get((cell, name))
            if s is None:
                continue
            lines.append(
                f"| {cell.label} | {name} | {s.rps:,.0f} ({s.rps_best:,.0f}) | {_ms(s.p50)} "
                f"| {_ms(s.p99)} | {_ms(s.ttfc)} | {s.errors} |"
            )
    lines += ["", *_ratios(summaries, cells), "", *_targets(summaries, cells)]
    lines += ["", *_soak(results), ""]
    return "\n".join(lines)


def _ratio(ours: Summary | None, theirs: Summary | None) -> str:
    if ours is None or theirs is None or not theirs.rps:
        return "n/a"
    return f"{ours.rps / theirs.rps:.2f}x"


def _ratios(summaries: dict[tuple[Cell, str], Summary], cells: Sequence[Cell]) -> list[str]:
    lines = [
        "### helexa's ratios (median rounds)",
        "",
        "| cell | helexa/direct req/s | helexa/minimal req/s | helexa/LiteLLM req/s "
        "| added p50 ms vs direct | added TTFC ms vs direct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        ours = summaries.get((cell, "helexa"))
        direct = summaries.get((cell, "direct"))
        if ours is None or direct is None:
            continue
        ttfc = f"{(ours.ttfc - direct.ttfc) * MS:+.1f}" if cell.stream else "-"
        lines.append(
            f"| {cell.label} | {_ratio(ours, direct)} "
            f"| {_ratio(ours, summaries.get((cell, 'minimal proxy')))} "
            f"| {_ratio(ours, summaries.get((cell, 'LiteLLM')))} "
            f"| {(ours.p50 - direct.p50) * MS:+.1f} | {ttfc} |"
        )
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _targets(summaries: dict[tuple[Cell, str], Summary], cells: Sequence[Cell]) -> list[str]:
    lines = [
        f"### targets ({TARGET_CLIENTS} clients)",
        "",
        "| target | cell | median round | best round |",
        "|---|---|---|---|",
    ]
    for cell in cells:
        if cell.clients != TARGET_CLIENTS:
            continue
        ours = summaries.get((cell, "helexa"))
        if ours is None:
            continue
        for name, floor in (("LiteLLM", 50.0), ("minimal proxy", 0.8)):
            theirs = summaries.get((cell, name))
            if theirs is None:
                continue
            med, best = ours.rps / theirs.rps, ours.rps_best / theirs.rps_best
            lines.append(
                f"| req/s >= {floor:g}x {name} | {cell.label} | {med:.2f}x "
                f"({_verdict(med >= floor)}) | {best:.2f}x ({_verdict(best >= floor)}) |"
            )
        direct = summaries.get((cell, "direct"))
        if direct is None:
            continue
        if cell.stream:
            label, limit = "added TTFC p50 <= 7 ms", 7.0
            med, best = ours.ttfc - direct.ttfc, ours.ttfc_best - direct.ttfc_best
        else:
            label, limit = "added p50 <= 5 ms", 5.0
            med, best = ours.p50 - direct.p50, ours.p50_best - direct.p50_best
        lines.append(
            f"| {label} | {cell.label} | {med * MS:+.1f} ms ({_verdict(med * MS <= limit)}) "
            f"| {best * MS:+.1f} ms ({_verdict(best * MS <= limit)}) |"
        )
    return lines


def _soak(results: Results) -> list[str]:
    lines = [
        "### process CPU and memory over all the runs above (scenario 6)",
        "",
        "CPU is the process's own user + system time (children included) while it served "
        "the route's cells, so CPU contention does not inflate it the way it does latency.",
        "",
        "| contestant | route | requests served | CPU ms per request | RSS after warm-up MiB "
        "| RSS at end MiB | peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for route in ("openai", "anthropic"):
        for name in ORDER:
            soak = results.soak.get((name, route))
            if soak is None or not soak.requests:
                continue
            lines.append(
                f"| {name} | {route} | {soak.requests:,} "
                f"| {soak.cpu_seconds / soak.requests * MS:.3f} | {soak.rss_start / MIB:.0f} "
                f"| {soak.rss_end / MIB:.0f} | {soak.rss_peak / MIB:.0f} |"
            )
    return lines
