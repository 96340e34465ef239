"""Before/after comparison (``python -m x_reco.bench.compare``): both sides run the same timing job, the
older tree through its JSON worker entry (here this tree's own ``x_reco.bench.timing``, as the next
comparison will use it), the newer one as a typed ``TimingJob`` in a fresh worker process."""

import pathlib

import pytest

from x_reco.bench import compare
from x_reco.bench.timing import TimingJob

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_json_job_of_older_workers_is_a_timing_job():
    job = compare.timing_job("tiny", (1, 11, 5), 3, 4, "/tmp/src")
    typed = TimingJob.from_dict(job)
    assert typed.variants == compare.VARIANTS and typed.grid[0] == ("dense", ((1, 11, 5),)) and typed.calls == 3
    with pytest.raises(ValueError, match="unknown keys"):
        TimingJob.from_dict({**job, "batch": 3})


@pytest.mark.slow
def test_compare_runs_both_sides(tmp_path):
    raw = compare.main(
        [
            "--before",
            str(ROOT),
            "--before-worker",
            "x_reco.bench.timing",
            "--out",
            str(tmp_path),
            "--preset",
            "tiny",
            "--shape",
            "1",
            "11",
            "5",
            "--rounds",
            "1",
            "--calls",
            "3",
            "--users",
            "4",
        ]
    )
    assert set(raw["rows"]["before"]) == set(raw["rows"]["after"]) == set(compare.VARIANTS)
    assert "| split |" in (tmp_path / "compare.md").read_text()
