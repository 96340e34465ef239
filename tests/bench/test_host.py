"""Host-side request assembly benchmark (``python -m x_reco.bench.host``): the batched assembler and the
per-row reference are timed side by side on the same requests and must produce identical batches."""

from x_reco.bench import host


def test_host_benchmark_compares_both_paths(tmp_path, capsys):
    rows = host.main(
        [
            "--preset",
            "tiny",
            "--batches",
            "1",
            "3",
            "--history",
            "5",
            "--candidates",
            "7",
            "--calls",
            "4",
            "--out",
            str(tmp_path / "host.json"),
        ]
    )
    assert [r["B"] for r in rows] == [1, 3] and all(r["identical"] and r["speedup_p50"] > 0 for r in rows)
    assert "| tiny | 3 | 5 | 7 |" in capsys.readouterr().out and (tmp_path / "host.json").exists()
