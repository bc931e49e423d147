// Running as a systemd service (packaging/egressd.service, Type=notify): readiness and
// shutdown notifications through sd_notify(3), and journald-friendly logs. Outside systemd
// (NOTIFY_SOCKET and JOURNAL_STREAM unset) every call here is a no-op, so the daemon runs
// the same in a terminal, under another supervisor or in a test.
#pragma once

#include <sys/types.h>

#include <string>

namespace egressd::daemon {

// READY=1 with STATUS=`status`: sent only once the daemon enforces what it restored and
// serves its control socket (systemctl start returns then, and units ordered After= it
// can rely on enforcement). Also ends a RELOADING=1.
void notifyReady(const std::string& status);
// RELOADING=1 while SIGHUP re-reads the policy files; notifyReady ends it.
void notifyReloading();
// STOPPING=1 at the start of shutdown.
void notifyStopping();

// True when JOURNAL_STREAM ("DEV:INODE", set by systemd for a service whose stderr is the
// journal) names the file `dev`/`ino`: a process started from such a service with its
// stderr redirected elsewhere inherits the variable but must not format for the journal.
bool journalStreamNames(const char* journalStream, dev_t dev, ino_t ino);
// journalStreamNames for this process's stderr.
bool stderrIsJournal();

// Logs to stderr: "egressd LEVEL: message" in a terminal; under journald (stderrIsJournal)
// "<PRIORITY>message", as sd-daemon(3) describes, so journald stores the level and adds the
// timestamp and the unit's name itself (no duplicate prefix).
void setupLogging(const std::string& level);

}  // namespace egressd::daemon
