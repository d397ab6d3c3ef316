"""Turns bench/run's JSON lines into results.json and a markdown table per scenario, with ratios to ours."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
json.dump(rows, open(sys.argv[2], "w"), indent=2)

# (metric, label, higher is better)
METRICS = {
    "fanout": [("deliveries_per_sec", "deliveries/s", True), ("delivered_pct", "delivered %", True),
               ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False), ("p999_ms", "p99.9 ms", False)],
    "reqrep": [("replies_per_sec", "replies/s", True), ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False)],
    "storm": [("handshakes_per_sec", "handshakes/s", True)],
    "idle": [("kb_per_connection", "KiB per connection", False)],
}
METRICS["cross"] = METRICS["fanout"]
TITLES = {
    "fanout": "Fan-out: {0} subscribers in one group, one publisher at {1} msg/s (0: as fast as it can), {2} s, 128-byte payload",
    "reqrep": "Request/reply: {0} clients in a closed loop, {1} s",
    "storm": "Connect storm: {0} connections, 64 at a time",
    "idle": "Idle memory: {0} connections (server RSS growth)",
    "cross": "Cross-node fan-out: {0} subscribers spread over 2 nodes linked by Redis, publisher on node 1 at {1} msg/s (0: as fast as it can), {2} s",
}

out = []
scenarios = []
for row in rows:
    if row["args"] not in scenarios:
        scenarios.append(row["args"])
for args in scenarios:
    kind, *params = args.split()
    group = [r for r in rows if r["args"] == args]
    ours = next((r for r in group if r["server"] == "ours"), None)
    metrics = METRICS[kind]
    out.append(f"### {TITLES[kind].format(*params)}\n")
    header = "| server | " + " | ".join(label for _, label, _ in metrics) + f" | {metrics[0][1]}, ratio to ours |"
    out.append(header)
    out.append("|" + "---|" * (len(metrics) + 2))
    for r in group:
        if "error" in r:
            out.append(f"| {r['server']} | " + " | ".join("failed" for _ in metrics) + " | |")
            continue
        cells = []
        for key, _, _ in metrics:
            value = r.get(key, 0)
            cells.append(f"{value:,.1f}" if isinstance(value, float) else f"{value:,}")
        first, _, higher = metrics[0]
        ratio = ""
        if ours and "error" not in ours and ours.get(first) and r.get(first):
            ratio = f"{r[first] / ours[first]:.2f}×"
        out.append(f"| {r['server']} | " + " | ".join(cells) + f" | {ratio} |")
    out.append("")
open(sys.argv[3], "w").write("\n".join(out) + "\n")
