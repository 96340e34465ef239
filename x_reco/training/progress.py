"""Progress callbacks for the training loops: a tqdm bar (CLI) and a time-throttled wrapper (logs)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tqdm.auto import tqdm

Progress = Callable[[int, int, float, float, float], None]


class TqdmProgress:
    """``progress(step, total, loss, examples_per_s, eta_s)`` driving a tqdm bar; call ``close()`` at the end."""

    def __init__(self, desc: str = "train", **tqdm_kwargs):
        self._bar: tqdm | None = None
        self._desc = desc
        self._kwargs = tqdm_kwargs

    def __call__(self, step: int, total: int, loss: float, examples_per_s: float, eta_s: float) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, initial=step - 1, desc=self._desc, **self._kwargs)
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{examples_per_s:.0f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def throttled(callback: Progress, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> Progress:
    """Forward at most one call per ``every_s`` seconds to ``callback``, plus always the final step."""
    last = [-float("inf")]

    def progress(step: int, total: int, loss: float, examples_per_s: float, eta_s: float) -> None:
        now = clock()
        if step >= total or now - last[0] >= every_s:
            last[0] = now
            callback(step, total, loss, examples_per_s, eta_s)

    return progress
