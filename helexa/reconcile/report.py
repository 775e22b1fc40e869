"""What an apply did, action by action: progress lines while it runs, a report after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from helexa.reconcile.plan import Step
from helexa.reconcile.render import action_line

ActionStatus = Literal["done", "skipped", "failed", "not_attempted"]
Phase = Literal["start", "waiting", "done", "skipped", "failed", "not_attempted"]
# Statuses after which the actions that depend on this one may run.
SUCCEEDED: frozenset[ActionStatus] = frozenset({"done", "skipped"})


@dataclass(frozen=True)
class ProgressEvent:
    action: Step
    phase: Phase
    elapsed_s: float
    message: str = ""
    at: float = 0.0  # the applier's clock (monotonic), for latency measurements

    def line(self) -> str:
        what = f"{action_line(self.action)}"
        if self.phase == "start":
            return f"  {self.action.id:>3} {what} ..."
        if self.phase == "waiting":
            return f"  {self.action.id:>3} {what}: still running ({self.elapsed_s:.0f}s elapsed)"
        if self.phase == "done":
            return f"  {self.action.id:>3} {what}: done in {self.elapsed_s:.1f}s"
        if self.phase == "skipped":
            return f"  {self.action.id:>3} {what}: nothing to do ({self.message})"
        if self.phase == "failed":
            return (
                f"  {self.action.id:>3} {what}: FAILED after {self.elapsed_s:.1f}s: {self.message}"
            )
        return f"  {self.action.id:>3} {what}: not attempted ({self.message})"


@dataclass(frozen=True)
class ActionResult:
    action: Step
    status: ActionStatus
    message: str = ""
    elapsed_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCEEDED


@dataclass(frozen=True)
class ApplyReport:
    results: tuple[ActionResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.succeeded for r in self.results)

    def with_status(self, status: ActionStatus) -> list[ActionResult]:
        return [r for r in self.results if r.status == status]

    def summary(self) -> str:
        parts = [
            f"{len(self.with_status('done'))} done",
            f"{len(self.with_status('skipped'))} already in place",
        ]
        if not self.ok:
            parts += [
                f"{len(self.with_status('failed'))} failed",
                f"{len(self.with_status('not_attempted'))} not attempted",
            ]
        head = "Apply complete" if self.ok else "Apply failed"
        return f"{head}: {', '.join(parts)}."

    def render(self) -> str:
        lines = [self.summary()]
        labels = {
            "done": "done",
            "skipped": "in place",
            "failed": "FAILED",
            "not_attempted": "not attempted",
        }
        for result in self.results:
            detail = f"({result.elapsed_s:.1f}s)" if result.status == "done" else result.message
            lines.append(
                f"  {labels[result.status]:<13} {result.action.id:>3} "
                f"{action_line(result.action)}  {detail}".rstrip()
            )
        if not self.ok:
            lines.append("Nothing was rolled back. Run `helexa plan` to see what remains.")
        return "\n".join(lines) + "\n"
