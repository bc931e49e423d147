#!/usr/bin/env python3
"""Checks that scripts/bench's processes run where it put them: every thread of each
process tree may run on its one CPU and no other.

Usage: pinning.py ROLE:CPU:PID[:SCOPE] ...
  ROLE   a name for the report (load, proxy, origin, resolver)
  CPU    the one CPU its threads must be allowed on
  SCOPE  tree (default): PID and all its descendants; self: PID only;
         children: PID's descendants only (egressd run's sandboxed command)

Prints one JSON object: every thread seen (role, pid, tid, comm, allowed CPUs) and a
"problems" list, one entry per process whose threads may run elsewhere. A process that
exits while it is read is skipped. Taken while a cell runs, so the load generator,
helpers forked by a proxy (squid's certificate generators) and threads started lazily
are in it.
"""

import json
import os
import sys

from procstat import descendants


def cpu_set(text):
    """{0, 1} from a Cpus_allowed_list such as "0-1" or "0,2-3"."""
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def thread_affinity(pid, tid):
    """(comm, Cpus_allowed_list) of one thread, or None when it is gone."""
    comm, allowed = None, None
    try:
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "Name":
                    comm = value.strip()
                elif key == "Cpus_allowed_list":
                    allowed = value.strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (comm, allowed) if allowed is not None else None


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    threads, problems = [], []
    for spec in sys.argv[1:]:
        role, cpu, pid, *scope = spec.split(":")
        cpu, pid, scope = int(cpu), int(pid), (scope or ["tree"])[0]
        pids = {"self": [pid], "children": descendants(pid)}.get(scope, [pid] + descendants(pid))
        for p in pids:
            try:
                tids = sorted(int(t) for t in os.listdir(f"/proc/{p}/task"))
            except (FileNotFoundError, ProcessLookupError):
                continue
            elsewhere = {}
            for tid in tids:
                seen = thread_affinity(p, tid)
                if seen is None:
                    continue
                comm, allowed = seen
                threads.append(dict(role=role, pid=p, tid=tid, comm=comm, cpus=allowed))
                if cpu_set(allowed) != {cpu}:
                    elsewhere.setdefault(allowed, []).append(comm)
            for allowed, comms in elsewhere.items():
                problems.append(
                    f"{role}: {len(comms)} thread(s) of pid {p} ({comms[0]}) may run on "
                    f"CPUs {allowed}, not only {cpu}"
                )
    print(json.dumps({"threads": threads, "problems": problems}))


if __name__ == "__main__":
    main()
