"""Live search progress on the terminal: one line per arm (done / running / total, best so far)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass
class ArmCounts:
    """Progress of one arm."""

    total: int
    metric_name: str
    higher_is_better: bool
    running: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    best: float | None = None

    def offer(self, value: float | None) -> None:
        """Keep `value` if it beats the best validation metric so far."""
        if value is None:
            return
        if self.best is None or (value > self.best if self.higher_is_better else value < self.best):
            self.best = value


class SearchProgress:
    """Arm counters and their live table on stderr (redrawn only when something changes)."""

    def __init__(self, arms: dict[str, ArmCounts], title: str) -> None:
        self.arms, self.title = arms, title
        self._live: Live | None = None

    def start(self) -> None:
        """Begin drawing (idempotent)."""
        if self._live is None:
            self._live = Live(self.table(), console=Console(stderr=True), auto_refresh=False)
            self._live.start()

    def stop(self) -> None:
        """Draw the final table and stop."""
        if self._live is not None:
            self._live.update(self.table(), refresh=True)
            self._live.stop()
            self._live = None

    def started(self, arm: str, trial_id: str) -> None:
        self.arms[arm].running.add(trial_id)
        self._refresh()

    def result(self, arm: str, value: float | None) -> None:
        self.arms[arm].offer(value)
        self._refresh()

    def finished(self, arm: str, trial_id: str) -> None:
        self.arms[arm].running.discard(trial_id)
        self.arms[arm].done.add(trial_id)
        self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.table(), refresh=True)

    def table(self) -> Table:
        """The progress table: one row per arm."""
        table = Table(title=self.title)
        for column in ("arm", "done", "running", "total", "best val"):
            table.add_column(column)
        for key, arm in self.arms.items():
            best = "-" if arm.best is None else f"{arm.metric_name} {arm.best:.4g}"
            table.add_row(key, str(len(arm.done)), str(len(arm.running)), str(arm.total), best)
        return table

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_live"] = None
        return state
