"""Progress lines for long runs: steps, steps/s, ETA and the last evaluation return."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    ETA_WINDOW = 3
    """Progress lines whose rate the ETA uses: the recent rate, since steps get slower (often tenfold) when the
    random-action warm-up ends and learning starts, and an average over the whole session would hide that."""

    def __init__(self, title: str, total: int, enabled: bool = True, stream=None, clock=time.perf_counter):
        self.title, self.total, self.enabled = title, total, enabled
        self.stream = stream or sys.stderr
        self._clock = clock
        self._t0 = clock()
        self._step0 = 0
        self._recent: list[tuple[float, int]] = []

    def start(self, step: int) -> None:
        self._t0, self._step0 = self._clock(), step
        self._recent = [(self._t0, step)]

    def rate(self, step: int) -> float:
        """Steps per second since this session started."""
        elapsed = self._clock() - self._t0
        return (step - self._step0) / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, last_eval: float | None) -> None:
        if not self.enabled:
            return
        rate = self.rate(step)
        now = self._clock()
        self._recent = (self._recent + [(now, step)])[-(self.ETA_WINDOW + 1):]
        (t_old, step_old) = self._recent[0]
        recent = (step - step_old) / (now - t_old) if now > t_old and step > step_old else rate
        eta = (self.total - step) / recent if recent > 0 else float("inf")
        eval_text = f"{last_eval:9.2f}" if last_eval is not None else "      n/a"
        eta_text = format_duration(eta) if eta != float("inf") else "?"
        print(f"[{self.title}] {step:>9,}/{self.total:,} ({100 * step / self.total:5.1f}%)  {rate:7.1f} steps/s  "
              f"ETA {eta_text:>7}  eval {eval_text}", file=self.stream, flush=True)

    def finish(self, summary: dict) -> None:
        if self.enabled:
            print(f"[{self.title}] done: {summary['env_steps']:,} steps in {format_duration(summary['wall_time_s'])}, "
                  f"final eval {summary['final_eval_return']:.2f}, best {summary['best_eval_return']:.2f}",
                  file=self.stream, flush=True)
