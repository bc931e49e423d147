#!/usr/bin/env python3
"""Results of scripts/bench: one JSON line per cell and round, rendered as markdown tables.

  table.py record RESULTS key=value ...   append one round of one cell
      round: which round (scripts/bench runs every target once per round, in turn)
      load, waited: the 1-min load average when the round's cell started, and the
           seconds it waited for the load average to drop that far
      target, scenario, conns, note: labels
      failed: why the cell could not be measured (empty when it was)
      skipped: why the cell does not apply to this target
      refused: why the cell was not run (the machine was busy)
      closes_after_response=1: the target closes every connection after one response
           without announcing it; wrk counts each such close as one read error
      resumption=1: the cell offered TLS session resumption; the share of handshakes
           the target resumed is shown (tls_conns.c's resumed/handshakes counters)
      out: the load generator's stdout (wrk's BENCH_RESULT line, idle_conns.py's
           BENCH_IDLE line or h2load's summary); exit: its exit code
      tool=h2load, h2log: h2load's --log-file (per-request latency), expected: the body
           every answer carries, inflight: requests in flight at most (bodies may end
           past the measured duration)
      before, after: procstat.py samples of the proxy (files)
      pinning: pinning.py's snapshot, taken while the cell ran (file)
  table.py render RESULTS HEADER_FILE     print the markdown report: per cell the median
                                          over its rounds, and the spread of req/s
  table.py rounds RESULTS                 print every round's own figures
  table.py failures RESULTS               print how many cells failed or saw errors
  table.py refused RESULTS                print how many cells were refused

A round is "ok" only when the load generator ran, exited 0, completed requests, and saw
no non-2xx answer, socket error, timeout, TLS error or wrong body, and every process of
the cell ran on the CPU it was pinned to: everything else is spelled out in the result
column, so a proxy that answers errors fast never looks fast. A cell shows figures only
when every one of its rounds was measured; a refused or failed round leaves it without.
"""

import json
import os
import re
import statistics
import sys

SCENARIOS = {
    "keepalive": "keep-alive",
    "close": "conn per request",
    "1m": "1 MiB body",
    "paced": "paced",
    "tls-keepalive": "HTTPS keep-alive",
    "tls-new": "HTTPS conn per request, full handshake",
    "tls-resume": "HTTPS conn per request, resumed",
    "tls-1m": "HTTPS 1 MiB body",
    "tls-h2-keepalive": "HTTPS keep-alive, h2load",
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
# The figures of a round that a cell reports as medians over its rounds.
FIGURES = (
    "rps",
    "mib_s",
    "p50_ms",
    "p99_ms",
    "cpu_us_per_req",
    "cpu_share",
    "peak_rss_mib",
    "held",
    "rss_before_mib",
    "rss_after_mib",
    "kib_per_conn",
)
MIB = 1024 * 1024


def parse_kv_line(text, tag):
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return {k: int(v) for k, v in (item.split("=", 1) for item in line.split()[1:])}
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


def read_rows(results_path):
    with open(results_path) as f:
        return [json.loads(line) for line in f if line.strip()]


def record(results_path, pairs):
    cell = dict(pair.split("=", 1) for pair in pairs)
    row = {
        k: cell.get(k, "")
        for k in ("target", "scenario", "conns", "note", "failed", "skipped", "refused")
    }
    row["round"] = int(cell.get("round") or 1)
    if cell.get("load"):
        row["load"] = float(cell["load"])
        row["waited"] = int(cell.get("waited") or 0)
    problems = []
    if not row["failed"] and not row["skipped"] and not row["refused"]:
        output = read_text(cell.get("out", ""))
        before, after = read_json(cell.get("before", "")), read_json(cell.get("after", ""))
        if cell.get("exit", "0") != "0":
            problems.append(f"load generator exited {cell.get('exit')}")
        if after is not None and not after["alive"]:
            problems.append("proxy process gone")
        if row["scenario"] == "idle":
            measure_idle(row, output, before, after, problems)
        else:
            if cell.get("tool") == "h2load":
                result = parse_h2load(row, output, cell, problems)
            else:
                result = parse_kv_line(output, "BENCH_RESULT")
            closes = cell.get("closes_after_response") == "1"
            measure_requests(row, result, before, after, problems, closes)
            if cell.get("resumption") == "1" and row.get("handshakes"):
                row["resumed_pct"] = 100.0 * row["resumed"] / row["handshakes"]
        pinning = read_json(cell.get("pinning", ""))
        if pinning is None:
            problems.append("pinning not checked")
        else:
            problems.extend("not pinned: " + p for p in pinning["problems"])
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


def parse_h2load(row, output, cell, problems):
    """h2load's summary and per-request log as a BENCH_RESULT dict (wrk.lua's keys), or
    None. The protocol h2load negotiated goes into the row: it is the point of the
    scenario, and whatever happened is shown."""
    alpn = re.search(r"^Application protocol: (\S+)", output, re.M)
    if alpn:
        row["protocol"] = alpn.group(1)
    elif "No protocol negotiated" in output:
        row["protocol"] = "no ALPN"
    tls = re.search(r"^TLS Protocol: (\S+)", output, re.M)
    if tls:
        row["tls_version"] = tls.group(1)
    finished = re.search(r"^finished in ([\d.]+)(us|ms|s),", output, re.M)
    requests = re.search(
        r"^requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"\d+ errored, (\d+) timeout",
        output,
        re.M,
    )
    codes = re.search(r"^status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output, re.M)
    traffic = re.search(r"^traffic: .*?\((\d+)\) total, .*\((\d+)\) data", output, re.M)
    if not (finished and requests and codes and traffic):
        return None
    seconds = float(finished.group(1)) / {"us": 1e6, "ms": 1e3, "s": 1}[finished.group(2)]
    done, succeeded, failed, timeouts = (int(n) for n in requests.groups())
    latencies = []
    for line in read_text(cell.get("h2log", "")).splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1] != "-1":
            latencies.append(int(fields[2]))
    latencies.sort()
    body = os.path.getsize(cell["expected"])
    data, inflight = int(traffic.group(2)), int(cell.get("inflight") or 0)
    # h2load does not compare bodies (the preflight does); their sizes must add up: every
    # completed answer's body, plus at most one per request in flight when it stopped.
    if succeeded and not succeeded * body <= data <= (succeeded + inflight) * body:
        problems.append(f"{data:,} body bytes for {succeeded:,} answers of {body} bytes")
    return {
        "requests": done,
        "duration_us": int(seconds * 1e6),
        "bytes": int(traffic.group(1)),
        "p50_us": latencies[len(latencies) // 2] if latencies else 0,
        "p99_us": latencies[len(latencies) * 99 // 100] if latencies else 0,
        "non2xx": sum(int(n) for n in codes.groups()),
        "failed_streams": failed,
        "timeouts": timeouts,
    }


def measure_requests(row, r, before, after, problems, closes_after_response):
    if r is None:
        problems.append("no load generator result")
        return
    seconds = r["duration_us"] / 1e6
    if "handshakes" in r:  # tls_conns.c
        row.update(handshakes=r["handshakes"], resumed=r.get("resumed", 0))
    row.update(
        requests=r["requests"],
        rps=r["requests"] / seconds if seconds else 0.0,
        mib_s=r["bytes"] / MIB / seconds if seconds else 0.0,
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
        ("failed_streams", "requests failed (stream or connection error)"),
    ):
        if r.get(key, 0):
            problems.append(f"{r[key]} {label}")
    if before is not None and after is not None and r["requests"] and seconds:
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


# --- cells: the rounds of one target and scenario, taken together ---------------------


def per_round(items, rounds):
    """One text for what happened in some rounds: "X" when every round of the cell said
    the same, else "round 2: X; round 3: Y"."""
    texts = {text for _, text in items}
    if len(items) == rounds and len(texts) == 1:
        return texts.pop()
    return "; ".join(f"round {n}: {text}" for n, text in items)


def spread_pct(values):
    """(max - min) / median in percent, or None with fewer than two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2 or not statistics.median(values):
        return None
    return 100.0 * (max(values) - min(values)) / statistics.median(values)


def cells(rows):
    """One cell per scenario and target, in the order they first ran. Its figures are the
    median over its rounds, each figure on its own; only when every round was measured."""
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["target"]), []).append(r)
    out = []
    for rounds in groups.values():
        n = len(rounds)
        cell = {k: rounds[0][k] for k in ("scenario", "target", "conns", "note")}
        cell["skipped"] = rounds[0]["skipped"] if all(r["skipped"] for r in rounds) else ""
        cell["failed"] = per_round([(r["round"], r["failed"]) for r in rounds if r["failed"]], n)
        cell["refused"] = per_round(
            [(r["round"], r["refused"]) for r in rounds if r["refused"]], n
        )
        problems = [(r["round"], "; ".join(r["problems"])) for r in rounds if r.get("problems")]
        if problems:
            cell["problems"] = [per_round(problems, n)]
        measured = [r for r in rounds if not (r["failed"] or r["skipped"] or r["refused"])]
        if len(measured) == n:
            for key in FIGURES:
                values = [r[key] for r in measured if r.get(key) is not None]
                if values:
                    cell[key] = statistics.median(values)
            main = "kib_per_conn" if cell["scenario"] == "idle" else "rps"
            cell["spread_pct"] = spread_pct([r.get(main) for r in measured])
            handshakes = sum(r.get("handshakes", 0) for r in measured if "resumed_pct" in r)
            if handshakes:
                # The share over all rounds' handshakes, as the note says.
                cell["handshakes"] = handshakes
                resumed = sum(r["resumed"] for r in measured if "resumed_pct" in r)
                cell["resumed_pct"] = 100.0 * resumed / handshakes
            protocols = [r["protocol"] for r in measured if r.get("protocol")]
            if protocols:
                versions = sorted({r["tls_version"] for r in measured if r.get("tls_version")})
                cell["protocols"] = (protocols, versions)
        out.append(cell)
    return out


# --- rendering --------------------------------------------------------------------------


def fmt(value, pattern):
    return pattern.format(value) if value is not None else "—"


def outcome(row):
    """The result column: what went wrong in which round, else "ok", with the notes."""
    texts = []
    if row["failed"]:
        texts.append("FAILED: " + row["failed"])
    if row.get("refused"):
        texts.append("refused: " + row["refused"])
    if row.get("problems"):
        texts.append("**" + "; ".join(row["problems"]) + "**")
    if not texts:
        texts.append("n/a: " + row["skipped"] if row.get("skipped") else "ok")
    notes = [row["note"]] if row["note"] else []
    if "protocols" in row:
        protocols, versions = row["protocols"]
        said = ", ".join(
            p if n == len(protocols) else f"{p} in {n} of {len(protocols)} rounds"
            for p, n in {p: protocols.count(p) for p in protocols}.items()
        )
        notes.insert(0, f"negotiated {said}" + (f" over {'/'.join(versions)}" if versions else ""))
        if "streams" in row["conns"] and "h2" not in protocols:
            notes.insert(1, "h2load pipelines each connection's streams as HTTP/1.1 requests")
    elif row.get("protocol"):
        over = f" over {row['tls_version']}" if row.get("tls_version") else ""
        notes.insert(0, f"negotiated {row['protocol']}{over}")
    if "resumed_pct" in row:
        notes.insert(0, f"{row['resumed_pct']:.0f}% of {row['handshakes']:,} handshakes resumed")
    return "; ".join(texts) + (f" ({'; '.join(notes)})" if notes else "")


def baseline(target):
    """The direct row a target's added p99 is measured against: "direct", or for a
    variant row ("egressd intercept, --h1") the direct row of the same variant."""
    variant = target.partition(", ")[2]
    return "direct" + (", " + variant if variant else "")


def markdown(headers, rows):
    """A markdown table; text columns left-aligned, figures right-aligned."""
    align = ["---" if h in ("scenario", "target", "result") else "--:" for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def request_table(rows, with_round=False):
    """The req/s table of cells (with the spread column) or of single rounds."""
    direct_p99 = {
        (r["scenario"], r["target"], r.get("round")): r["p99_ms"]
        for r in rows
        if r["target"].startswith("direct") and "p99_ms" in r and not r["failed"]
    }
    headers = ["scenario", "target"] + (["round", "load"] if with_round else [])
    headers += ["conns", "req/s"] + ([] if with_round else ["spread"])
    headers += ["MiB/s", "p50 ms", "p99 ms", "p99 added vs direct", "proxy CPU µs/req"]
    headers += ["proxy CPU share", "peak RSS MiB", "result"]
    lines = []
    for scenario, label in SCENARIOS.items():
        for r in (r for r in rows if r["scenario"] == scenario):
            added = None
            base = direct_p99.get((scenario, baseline(r["target"]), r.get("round")))
            if not r["target"].startswith("direct") and "p99_ms" in r and base is not None:
                added = r["p99_ms"] - base
            line = [label, r["target"]]
            if with_round:
                line += [str(r["round"]), fmt(r.get("load"), "{:.2f}")]
            line += [r["conns"], fmt(r.get("rps"), "{:,.0f}")]
            if not with_round:
                line.append(fmt(r.get("spread_pct"), "{:.1f}%"))
            line += [
                fmt(r.get("mib_s"), "{:,.1f}"),
                fmt(r.get("p50_ms"), "{:.2f}"),
                fmt(r.get("p99_ms"), "{:.2f}"),
                fmt(added, "{:+.2f}"),
                fmt(r.get("cpu_us_per_req"), "{:.1f}"),
                fmt(r.get("cpu_share"), "{:.2f}"),
                fmt(r.get("peak_rss_mib"), "{:.1f}"),
                outcome(r),
            ]
            lines.append(line)
    return markdown(headers, lines)


def idle_table(rows, with_round=False):
    """The memory-per-idle-connection table; the spread is that of KiB per connection."""
    headers = ["target"] + (["round", "load"] if with_round else [])
    headers += ["connections held", "RSS before MiB", "RSS after MiB", "KiB per connection"]
    headers += ([] if with_round else ["spread"]) + ["result"]
    lines = []
    for r in (r for r in rows if r["scenario"] == "idle"):
        line = [r["target"]]
        if with_round:
            line += [str(r["round"]), fmt(r.get("load"), "{:.2f}")]
        line += [
            fmt(r.get("held"), "{:.0f}"),
            fmt(r.get("rss_before_mib"), "{:.1f}"),
            fmt(r.get("rss_after_mib"), "{:.1f}"),
            fmt(r.get("kib_per_conn"), "{:.1f}"),
        ]
        if not with_round:
            line.append(fmt(r.get("spread_pct"), "{:.1f}%"))
        lines.append(line + [outcome(r)])
    return markdown(headers, lines)


def load_table(rows):
    """Per scenario and round: the 1-min load average when its cells started (lowest and
    highest) and the seconds waited for it to drop."""
    seen = {}
    for r in rows:
        if "load" in r:
            seen.setdefault(r["scenario"], {}).setdefault(r["round"], []).append(r)
    rounds = sorted({n for by_round in seen.values() for n in by_round})
    lines = []
    for scenario, by_round in seen.items():
        line = [SCENARIOS.get(scenario, scenario)]
        for n in rounds:
            loads = [r["load"] for r in by_round.get(n, [])]
            waited = sum(r["waited"] for r in by_round.get(n, []))
            if not loads:
                line.append("—")
                continue
            low, high = f"{min(loads):.2f}", f"{max(loads):.2f}"
            line.append((low if low == high else f"{low}–{high}") + f", waited {waited} s")
        lines.append(line)
    return markdown(["scenario"] + [f"round {n}" for n in rounds], lines) if lines else []


def render(results_path, header_path):
    rows = read_rows(results_path)
    summary = cells(rows)
    out = [read_text(header_path).rstrip(), ""]
    loads = load_table(rows)
    if loads:
        out += ["1-min load average when the cells of each round started (or were refused):", ""]
        out += loads + [""]
    out += request_table([c for c in summary if c["scenario"] != "idle"])
    goal_lines = goals(summary)
    if goal_lines:
        out += ["", "Goals, from the medians of this run:", ""] + goal_lines
    if any(c["scenario"] == "idle" for c in summary):
        out += ["", "Memory per idle keep-alive connection (one request each, then idle):", ""]
        out += idle_table(summary)
    print("\n".join(out))


def render_rounds(results_path):
    rows = sorted(read_rows(results_path), key=lambda r: r["round"])
    out = ["# Every round of every cell (scripts/bench)", ""]
    out += request_table([r for r in rows if r["scenario"] != "idle"], with_round=True)
    if any(r["scenario"] == "idle" for r in rows):
        out += [""] + idle_table(rows, with_round=True)
    print("\n".join(out))


def goals(summary):
    def measured(scenario, target):
        for c in summary:
            if (
                c["scenario"] == scenario
                and c["target"] == target
                and not c.get("problems")
                and c.get("rps")
            ):
                return c
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


def count(results_path, what):
    summary = cells(read_rows(results_path))
    if what == "failures":
        print(sum(1 for c in summary if c["failed"] or c.get("problems")))
    else:
        print(sum(1 for c in summary if c["refused"]))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] in ("failures", "refused"):
        count(sys.argv[2], sys.argv[1])
    elif len(sys.argv) == 3 and sys.argv[1] == "rounds":
        render_rounds(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "render":
        render(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
