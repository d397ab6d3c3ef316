"""Turns bench/run's JSON lines into results.json and a markdown table per scenario, with ratios to ours."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
json.dump(rows, open(sys.argv[2], "w"), indent=2)

# (metric, label, higher is better)
METRICS = {
    "fanout": [("deliveries_per_sec", "deliveries/s", True), ("delivered_pct", "delivered %", True),
               ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False), ("p999_ms", "p99.9 ms", False),
               ("closed_1008", "closed 1008", False), ("server_cpu_ns_per_delivery", "server CPU ns per delivery", False),
               ("syscalls_per_delivery", "write syscalls per delivery", False)],
    "floor": [("ns_per_delivery", "writer CPU ns per delivery", False), ("writes_per_delivery", "writes per delivery", False),
              ("delivered_pct", "delivered %", True)],
    "stall": [("p99_ms", "others' p99 ms", False), ("delivered_pct", "others delivered %", True),
              ("p50_ms", "others' p50 ms", False), ("stalled_dropped_after_s", "stalled client dropped after s", False),
              ("closed_1008", "others closed 1008", False)],
    "ask": [("own_p50_ms", "to its own client: p50 ms", False), ("other_p50_ms", "to another client: p50 ms", False),
            ("own_p99_ms", "own: p99 ms", False), ("other_p99_ms", "other: p99 ms", False),
            ("own_asks", "own: requests", True), ("other_asks", "other: requests", True)],
    "cursors": [("fast_age_p50_ms", "age p50 ms", False), ("fast_age_p99_ms", "age p99 ms", False),
                ("slow_connected", "slow client connected", True), ("slow_age_p50_ms", "slow: age p50 ms", False),
                ("slow_age_p99_ms", "slow: age p99 ms", False), ("receipts_per_sec", "frames read/s", True),
                ("closed_1008", "closed 1008", False)],
    "reqrep": [("replies_per_sec", "replies/s", True), ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False)],
    "storm": [("handshakes_per_sec", "handshakes/s", True)],
    "idle": [("kb_per_connection", "KiB per connection", False)],
    "presence": [("frames_per_member_per_sec", "presence frames per member/s", False),
                 ("bytes_per_member_per_sec", "bytes per member/s", False),
                 ("changes_per_sec", "joins + leaves/s", True)],
    "recover": [("seconds_to_all", "s until every client has all", False), ("recovered", "told recovered", True),
                ("complete", "clients with every frame", True), ("replayed_frames_per_sec", "replayed frames/s", True)],
    "chat": [("deliveries_per_sec", "deliveries/s", True), ("wire_bytes_per_delivery", "wire bytes per delivery", False),
             ("server_cpu_us_per_delivery", "server CPU µs per delivery", False), ("delivered_pct", "delivered %", True),
             ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False), ("negotiated", "compressing subscribers", True)],
}
METRICS["groups"] = [("p99_us", "p99 µs", False), ("p50_us", "p50 µs", False), ("delivered", "delivered", True),
                     ("expected", "expected", True), ("direct_p99_us", "direct messages: p99 µs", False),
                     ("other_shards_p99_us", "other shards' groups: p99 µs", False),
                     ("g0_shard_p99_us", "g0's shard's groups: p99 µs", False),
                     ("replica_stopped", "g0's replica stopped", False),
                     ("unreplicated", "frames counted unreplicated", False),
                     ("failover_first_delivery_ms", "g0's master killed: ms to its shard's first delivery", False)]
METRICS["idle-deflate"] = METRICS["idle"]
METRICS["cross"] = METRICS["fanout"][:6]
METRICS["recover-redis"] = METRICS["recover"]
TITLES = {
    "fanout": "Fan-out: {0} subscribers in one group, one publisher at {1} msg/s (0: as fast as it can), {2} s, 128-byte payload",
    "floor": "The syscall floor: a pre-framed 128-byte text frame written to {0} loopback sockets at {1} msg/s for {2} s by one thread, nothing else (bench/src/bin/syscall_floor.rs): one write per delivery, or one write per socket per 5 ms tick",
    "reqrep": "Request/reply: {0} clients in a closed loop, {1} s",
    "storm": "Connect storm: {0} connections, 64 at a time",
    "idle": "Idle memory: {0} connections (server RSS growth)",
    "recover": "Reconnect storm with recovery: {1} frames sent to a group with history (1 000 kept) while its members were away; then {0} clients connect at once, send their position and join",
    "recover-redis": "Reconnect storm with recovery from Redis: {1} frames sent to a group whose history Redis keeps (1 000 frames) while its members were away; then {0} clients connect at once to one node, send their position and join",
    "presence": "Presence: {0} members in one group with presence (100 ms tick), {1} newcomers/s joining and leaving a second later, {2} s",
    "cross": "Cross-node fan-out: {0} subscribers spread over 2 nodes linked by Redis, publisher on node 1 at {1} msg/s (0: as fast as it can), {2} s",
    "ask": "A handler's request to a client (Client::request), closed loop for {0} s each: to the client whose message it handles, and to another client",
    "stall": "A stalled subscriber: {0} subscribers at {1} msg/s for {2} s, without (0) and with (1) one more subscriber that never reads",
    "chat": "Chat fan-out: {0} subscribers in one group, one publisher at {1} msg/s, {2} s, a 1 KiB chat line; offer=1: the subscribers offer permessage-deflate (a server with it on compresses), offer=0: they do not",
    "idle-deflate": "Idle memory with permessage-deflate negotiated: {0} connections that offered it (server RSS growth)",
    "groups": "Group sends across nodes: 4 nodes, 200 groups, {1} sends/s for {0} s, a direct message to a member on another node for every fourth (bench/src/bin/groups.rs); by backplane mode",
    "cursors": "Cursor storm: {0} clients in one room each sending {1} positions/s, relayed to the room, {2} s; one more client reads a tenth of what each is sent (64 KiB socket receive buffer). Age: how old a position is when read",
}

out = []
# Variants of one scenario (stall 0/1, cursor kinds) share a table: group by the scenario's own arguments.
def base(args):
    kind, *params = args.split()
    count = {"stall": 3, "cursors": 3, "chat": 3, "floor": 3, "groups": 2}.get(kind)
    return " ".join([kind] + (params[:count] if count else params))

def label(row):
    extra = row["args"].split()[len(base(row["args"]).split()):]
    return row["server"] + (f" ({' '.join(extra)})" if extra else "")

scenarios = []
for row in rows:
    if base(row["args"]) not in scenarios:
        scenarios.append(base(row["args"]))
for args in scenarios:
    kind, *params = args.split()
    group = [r for r in rows if base(r["args"]) == args]
    ours = next((r for r in group if r["server"] == "ours"), None)
    metrics = METRICS[kind]
    out.append(f"### {TITLES[kind].format(*params)}\n")
    header = "| server | " + " | ".join(label for _, label, _ in metrics) + f" | {metrics[0][1]}, ratio to ours |"
    out.append(header)
    out.append("|" + "---|" * (len(metrics) + 2))
    for r in group:
        if "error" in r:
            out.append(f"| {label(r)} | " + " | ".join("failed" for _ in metrics) + " | |")
            continue
        cells = []
        for key, _, _ in metrics:
            value = r.get(key, 0)
            if value is None:
                cells.append("not dropped")
            elif isinstance(value, bool):
                cells.append("yes" if value else "no")
            else:
                digits = 3 if isinstance(value, float) and abs(value) < 1 else 1
                cells.append(f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}")
        first, _, higher = metrics[0]
        ratio = ""
        if ours and "error" not in ours and ours.get(first) and r.get(first) and not isinstance(r.get(first), bool):
            ratio = f"{r[first] / ours[first]:.2f}×"
        out.append(f"| {label(r)} | " + " | ".join(cells) + f" | {ratio} |")
    out.append("")
open(sys.argv[3], "w").write("\n".join(out) + "\n")
