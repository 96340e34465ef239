"""A job that costs nothing to run, for the worker-process tests (the worker imports only this module)."""

import dataclasses
import os
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class ProbeJob:
    """Reports its process id; ``fail`` raises, ``die`` ends the worker process without an answer,
    ``report`` announces two configurations and then works on for a while."""

    kind = "probe"
    mode: str = "ok"

    def run(self) -> list[dict]:
        if self.mode == "fail":
            raise ValueError("broken configuration")
        if self.mode == "die":
            os._exit(3)
        if self.mode == "report":
            from x_reco.bench.jobs import report

            report("first")
            report("second")
            time.sleep(1.5)  # the parent hears of both while the job still runs
        return [{"pid": os.getpid(), "value": np.float32(0.5), "ids": np.arange(2)}]
