#!/usr/bin/env python3
"""One sample of a server's CPU time and memory, for scripts/bench.

Usage: procstat.py ROOT_PID [--self-only]

Prints one JSON object: the pids counted, utime+stime in clock ticks (all threads,
including threads that already exited), the clock tick rate, and VmRSS and VmHWM in KiB.
Without --self-only the process's descendants are counted too, because a multi-process
proxy's cost is the sum of its processes. egressd needs --self-only: the benchmark's own
load generator is its child.
"""

import json
import os
import sys


def read_stat(pid):
    """(ppid, utime + stime, cutime + cstime) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            line = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = line[line.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def read_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read_stat(int(entry))
        if stat is not None:
            children.setdefault(stat[0], []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            found.append(child)
            stack.append(child)
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = int(sys.argv[1])
    self_only = "--self-only" in sys.argv[2:]
    pids = [root] if self_only else [root] + descendants(root)
    ticks, counted = 0, []
    for pid in pids:
        stat = read_stat(pid)
        if stat is None:
            continue
        ticks += stat[1]
        # A helper that exited and was reaped between two samples still counts, through
        # its parent's cutime; egressd's reaped children are the benchmark's own clients.
        if pid == root and not self_only:
            ticks += stat[2]
        counted.append(pid)
    print(
        json.dumps(
            {
                "pids": counted,
                "alive": root in counted,
                "ticks": ticks,
                "hz": os.sysconf("SC_CLK_TCK"),
                "rss_kib": sum(read_status_kib(p, "VmRSS") for p in counted),
                "hwm_kib": sum(read_status_kib(p, "VmHWM") for p in counted),
            }
        )
    )


if __name__ == "__main__":
    main()
