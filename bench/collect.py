"""Gathers the runs of bench/run.sh: DIR/results.json (every run by name)
and the tables bench/plots.gp draws (DIR/latency.tsv, DIR/rss.tsv)."""

import json
import sys
from pathlib import Path


def main(out):
    runs = {}
    for path in sorted(out.glob("*.json")):
        if path.name != "results.json":
            runs[path.stem] = json.loads(path.read_text())
    (out / "results.json").write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n")

    open_loop = sorted((r for r in runs.values()
                        if r.get("scenario") == "pairs" and r.get("mode") == "open"),
                       key=lambda r: r["offered_per_s"])
    with open(out / "latency.tsv", "w") as f:
        f.write("# offered_per_s delivered_per_s p50_us p90_us p99_us p999_us\n")
        for r in open_loop:
            lat = r["latency_us"]
            f.write(f"{r['offered_per_s']} {r['delivered_per_s']} {lat['p50']} "
                    f"{lat['p90']} {lat['p99']} {lat['p999']}\n")

    idle = sorted((r for r in runs.values()
                   if r.get("scenario") == "idle" and "node_rss_kib_after" in r),
                  key=lambda r: r["connect"]["connected"])
    with open(out / "rss.tsv", "w") as f:
        f.write("# connections node_rss_mib kib_per_connection\n")
        for r in idle:
            f.write(f"{r['connect']['connected']} {r['node_rss_kib_after'] / 1024:.1f} "
                    f"{r.get('node_rss_kib_per_connection', 0)}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
