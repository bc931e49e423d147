#!/usr/bin/env python3
"""Results of scripts/bench: one JSON line per cell, rendered as markdown tables.

  table.py record RESULTS key=value ...   append one cell
      target, scenario, conns, note: labels
      failed: why the cell could not be measured (empty when it was)
      skipped: why the cell does not apply to this target
      closes_after_response=1: the target closes every connection after one response
           without announcing it; wrk counts each such close as one read error
      resumption=1: the cell offered TLS session resumption; the share of handshakes
           the target resumed is shown (tls_conns.c's resumed/handshakes counters)
      out: the load generator's stdout (wrk's BENCH_RESULT line or idle_conns.py's
           BENCH_IDLE line); exit: its exit code
      before, after: procstat.py samples of the proxy (files)
  table.py render RESULTS HEADER_FILE     print the markdown report
  table.py failures RESULTS               print how many cells failed or saw errors

A cell is "ok" only when the load generator ran, exited 0, completed requests, and saw
no non-2xx answer, socket error, timeout, TLS error or wrong body: everything else is
spelled out in the result column, so a proxy that answers errors fast never looks fast.
"""

import json
import sys

TARGET_ORDER = [
    "direct",
    "egressd",
    "egressd passthrough",
    "egressd intercept",
    "tinyproxy",
    "squid",
    "squid ssl-bump",
    "mitmproxy",
    "mitmproxy transparent",
]
SCENARIOS = {
    "keepalive": "keep-alive",
    "close": "conn per request",
    "1m": "1 MiB body",
    "paced": "paced",
    "tls-keepalive": "HTTPS keep-alive",
    "tls-new": "HTTPS conn per request, full handshake",
    "tls-resume": "HTTPS conn per request, resumed",
    "tls-1m": "HTTPS 1 MiB body",
}
# Goal lines under the table: (label, scenario, target, versus, goal ratio).
GOALS = [
    ("HTTPS keep-alive, intercepted", "tls-keepalive", "egressd intercept", "squid ssl-bump", 3.0),
    (
        "HTTPS new connections, full handshake, intercepted",
        "tls-new",
        "egressd intercept",
        "squid ssl-bump",
        3.0,
    ),
    ("HTTPS 1 MiB, passthrough", "tls-1m", "egressd passthrough", "direct", 0.8),
]
MIB = 1024 * 1024


def parse_kv_line(text, tag):
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return dict(item.split("=", 1) for item in line.split()[1:])
    return None


def parse_json_line(text, tag):
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    return None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def read_json(path):
    text = read_text(path).strip()
    return json.loads(text) if text else None


def record(results_path, pairs):
    cell = dict(pair.split("=", 1) for pair in pairs)
    row = {k: cell.get(k, "") for k in ("target", "scenario", "conns", "note", "failed", "skipped")}
    problems = []
    if not row["failed"] and not row["skipped"]:
        output = read_text(cell.get("out", ""))
        before, after = read_json(cell.get("before", "")), read_json(cell.get("after", ""))
        if cell.get("exit", "0") != "0":
            problems.append(f"load generator exited {cell.get('exit')}")
        if after is not None and not after["alive"]:
            problems.append("proxy process gone")
        if row["scenario"] == "idle":
            measure_idle(row, output, before, after, problems)
        else:
            closes = cell.get("closes_after_response") == "1"
            measure_wrk(row, output, before, after, problems, closes)
            if cell.get("resumption") == "1" and row.get("handshakes"):
                row["resumed_pct"] = 100.0 * row["resumed"] / row["handshakes"]
        if problems:
            # tls_conns.c names the first failure of each kind on stderr.
            stderr = read_text(cell.get("out", "") + ".stderr")
            firsts = [
                line[len("tls_conns: ") :][:120]
                for line in stderr.splitlines()
                if line.startswith("tls_conns: first ")
            ]
            problems.extend(firsts[:3])
    if problems:
        row["problems"] = problems
    with open(results_path, "a") as f:
        f.write(json.dumps(row) + "\n")


def measure_wrk(row, output, before, after, problems, closes_after_response):
    result = parse_kv_line(output, "BENCH_RESULT")
    if result is None:
        problems.append("no wrk result")
        return
    r = {k: int(v) for k, v in result.items()}
    seconds = r["duration_us"] / 1e6
    if "handshakes" in r:  # tls_conns.c
        row.update(handshakes=r["handshakes"], resumed=r.get("resumed", 0))
    row.update(
        requests=r["requests"],
        rps=r["requests"] / seconds,
        mib_s=r["bytes"] / MIB / seconds,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
    )
    if r["requests"] == 0:
        problems.append("no request completed")
    if closes_after_response:
        # One unannounced close per completed response, plus at most one per connection
        # for the response in flight when wrk stopped. Beyond that they are real errors.
        row["closes_seen"] = min(r["read_errors"], r["requests"])
        allowed = r["requests"] + int(row["conns"].split()[0])
        r["read_errors"] = max(0, r["read_errors"] - allowed)
    for key, label in (
        ("non2xx", "non-2xx answers"),
        ("connect_errors", "connect errors"),
        ("read_errors", "read errors"),
        ("write_errors", "write errors"),
        ("timeouts", "timeouts"),
        ("tls_errors", "TLS errors"),
        ("bad_body", "wrong bodies"),
    ):
        if r.get(key, 0):
            problems.append(f"{r[key]} {label}")
    if before is not None and after is not None and r["requests"]:
        cpu_seconds = (after["ticks"] - before["ticks"]) / after["hz"]
        row["cpu_us_per_req"] = cpu_seconds * 1e6 / r["requests"]
        row["cpu_share"] = cpu_seconds / seconds
        row["peak_rss_mib"] = after["hwm_kib"] / 1024
        row["processes"] = len(after["pids"])


def measure_idle(row, output, before, after, problems):
    result = parse_json_line(output, "BENCH_IDLE")
    if result is None:
        problems.append("no idle-connection result")
        return
    held = result.get("open_at_sample", 0)
    row.update(count=result["count"], held=held, statuses=result["statuses"])
    problems.extend(result["errors"])
    non200 = sum(n for status, n in result["statuses"].items() if status != "200")
    if non200:
        problems.append(f"{non200} non-200 answers")
    if held < result["count"]:
        problems.append(f"only {held} of {result['count']} connections still open")
    if result.get("open_after_sample", 0) < held:
        problems.append(f"{held - result['open_after_sample']} closed during the sample")
    if before is not None and after is not None:
        row["rss_before_mib"] = before["rss_kib"] / 1024
        row["rss_after_mib"] = after["rss_kib"] / 1024
        if held:
            row["kib_per_conn"] = (after["rss_kib"] - before["rss_kib"]) / held


def fmt(value, pattern):
    return pattern.format(value) if value is not None else "—"


def outcome(row):
    if row["failed"]:
        text = "FAILED: " + row["failed"]
    elif row.get("skipped"):
        text = "n/a: " + row["skipped"]
    elif row.get("problems"):
        text = "**" + "; ".join(row["problems"]) + "**"
    else:
        text = "ok"
    notes = [row["note"]] if row["note"] else []
    if "resumed_pct" in row:
        notes.insert(0, f"{row['resumed_pct']:.0f}% of {row['handshakes']:,} handshakes resumed")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def render(results_path, header_path):
    with open(results_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    rows.sort(key=lambda r: order.get(r["target"], len(order)))
    direct_p99 = {
        r["scenario"]: r["p99_ms"]
        for r in rows
        if r["target"] == "direct" and "p99_ms" in r and not r["failed"]
    }

    out = [read_text(header_path).rstrip(), ""]
    out.append(
        "| scenario | target | conns | req/s | MiB/s | p50 ms | p99 ms | p99 added vs direct "
        "| proxy CPU µs/req | proxy CPU share | peak RSS MiB | result |"
    )
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for scenario, label in SCENARIOS.items():
        for r in (r for r in rows if r["scenario"] == scenario):
            added = None
            if r["target"] != "direct" and "p99_ms" in r and scenario in direct_p99:
                added = r["p99_ms"] - direct_p99[scenario]
            out.append(
                "| "
                + " | ".join(
                    [
                        label,
                        r["target"],
                        r["conns"],
                        fmt(r.get("rps"), "{:,.0f}"),
                        fmt(r.get("mib_s"), "{:,.1f}"),
                        fmt(r.get("p50_ms"), "{:.2f}"),
                        fmt(r.get("p99_ms"), "{:.2f}"),
                        fmt(added, "{:+.2f}"),
                        fmt(r.get("cpu_us_per_req"), "{:.1f}"),
                        fmt(r.get("cpu_share"), "{:.2f}"),
                        fmt(r.get("peak_rss_mib"), "{:.1f}"),
                        outcome(r),
                    ]
                )
                + " |"
            )

    goal_lines = goals(rows)
    if goal_lines:
        out += ["", "Goals (issue 4), from this run:", ""] + goal_lines

    idle = [r for r in rows if r["scenario"] == "idle"]
    if idle:
        out += ["", "Memory per idle keep-alive connection (one request each, then idle):", ""]
        out.append(
            "| target | connections held | RSS before MiB | RSS after MiB "
            "| KiB per connection | result |"
        )
        out.append("|---|--:|--:|--:|--:|---|")
        for r in idle:
            cells = [
                r["target"],
                fmt(r.get("held"), "{}"),
                fmt(r.get("rss_before_mib"), "{:.1f}"),
                fmt(r.get("rss_after_mib"), "{:.1f}"),
                fmt(r.get("kib_per_conn"), "{:.1f}"),
                outcome(r),
            ]
            out.append("| " + " | ".join(cells) + " |")
    print("\n".join(out))


def goals(rows):
    def measured(scenario, target):
        for r in rows:
            if (
                r["scenario"] == scenario
                and r["target"] == target
                and not r["failed"]
                and not r.get("problems")
                and r.get("rps")
            ):
                return r
        return None

    lines = []
    for label, scenario, target, versus, goal in GOALS:
        a, b = measured(scenario, target), measured(scenario, versus)
        if a is None or b is None:
            continue
        key = "mib_s" if scenario.endswith("1m") else "rps"
        unit = "MiB/s" if key == "mib_s" else "req/s"
        ratio = a[key] / b[key]
        verdict = "met" if ratio >= goal else "NOT met"
        lines.append(
            f"- {label}: {target} {a[key]:,.0f} {unit} = {ratio:.2f}× {versus} "
            f"({b[key]:,.0f}); goal ≥ {goal:g}×: {verdict}"
        )
    return lines


def failures(results_path):
    with open(results_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(sum(1 for r in rows if r["failed"] or r.get("problems")))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "failures":
        failures(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "render":
        render(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
