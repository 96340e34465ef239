"""Progress callbacks: the throttle forwards at most one call per interval plus the final step (the
Dagster layer logs through it); the tqdm helper follows the step counter, including a resumed start."""

import io

from x_reco.training.progress import TqdmProgress, throttled


def test_throttled_forwards_first_interval_and_final():
    now = [0.0]
    seen = []
    cb = throttled(lambda *a: seen.append(a[0]), every_s=5.0, clock=lambda: now[0])
    for step in range(1, 11):
        now[0] = step * 1.0
        cb(step, 10, 0.5, 100.0, 1.0)
    assert seen == [1, 6, 10]


def test_tqdm_progress_tracks_steps_from_resume_point():
    out = io.StringIO()
    with TqdmProgress("ranker", file=out, mininterval=0) as bar:
        for step in range(41, 46):
            bar(step, 50, 0.25, 1000.0, 3.0)
        assert bar._bar.n == 45 and bar._bar.total == 50
    assert "ranker" in out.getvalue()
