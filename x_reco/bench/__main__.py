"""``python -m x_reco.bench --out DIR [--grid reduced|issue|full] ...``: the benchmark CLI (``harness.main``)."""

from x_reco.bench.harness import main

if __name__ == "__main__":
    main()
