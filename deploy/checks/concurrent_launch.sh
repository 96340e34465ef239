#!/bin/bash
# Two concurrent `dg launch` runs of data_job (small synthetic world) into one storage root, compared
# table by table with one sequential run (docs/reliability.md, "Two concurrent runs").
# Usage: deploy/checks/concurrent_launch.sh [workdir]   (run from the repository root, after `make install`)
set -u
W=${1:-$(mktemp -d)}
CFG='{"ops": {"raw_tables": {"config": {"synthetic_size": "small"}}}}'
for d in seq par; do
  mkdir -p "$W/$d/home" && cp deploy/dagster.yaml "$W/$d/home/"
  DAGSTER_HOME="$W/$d/home" .venv/bin/dagster instance migrate > /dev/null
done
launch() { DAGSTER_HOME="$W/$1/home" XRECO_DATA_ROOT="$W/$1/data" .venv/bin/dg launch --job data_job \
  --partition synthetic --config-json "$CFG" > "$W/$2.log" 2>&1; }
start=$(date +%s); launch seq seq; echo "sequential: rc=$? $(($(date +%s) - start)) s"
start=$(date +%s); launch par par1 & p1=$!; launch par par2 & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
echo "concurrent: rc=$r1,$r2 $(($(date +%s) - start)) s (logs in $W)"
.venv/bin/python - "$W" <<'PY'
import filecmp, hashlib, sys
import duckdb
w = sys.argv[1]
def digests(db):
    with duckdb.connect(db, read_only=True) as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'synthetic' ORDER BY 1").fetchall()]
        return {n: hashlib.sha256(con.execute(f'SELECT * FROM synthetic."{n}"').df().to_csv(index=False).encode()).hexdigest()
                for n in names}
a, b = digests(f"{w}/seq/data/warehouse.duckdb"), digests(f"{w}/par/data/warehouse.duckdb")
print(f"{len(a)} tables; identical: {a == b}; differing: {sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))}")
m = "data/records/raw_manifest/synthetic.json"
print("manifest identical:", filecmp.cmp(f"{w}/seq/{m}", f"{w}/par/{m}", shallow=False))
PY
