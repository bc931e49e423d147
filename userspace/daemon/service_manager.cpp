#include "daemon/service_manager.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace egressd::daemon {

namespace {

void notify(const std::string& message) {
  // 0: not under systemd (no NOTIFY_SOCKET). The variable is kept (unset_environment 0):
  // READY, RELOADING and STOPPING all go through it over the daemon's lifetime.
  const int sent = sd_notify(0, message.c_str());
  if (sent < 0) {
    spdlog::warn("sd_notify {}: {}", message.substr(0, message.find('\n')), std::strerror(-sent));
  }
}

// sd-daemon(3)'s "<N>" prefix (SD_INFO is "<6>"): the syslog priority of the message's level.
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*tm*/,
              spdlog::memory_buf_t& dest) override {
    const char* priority = SD_INFO;
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug:
        priority = SD_DEBUG;
        break;
      case spdlog::level::info:
        priority = SD_INFO;
        break;
      case spdlog::level::warn:
        priority = SD_WARNING;
        break;
      case spdlog::level::err:
        priority = SD_ERR;
        break;
      case spdlog::level::critical:
        priority = SD_CRIT;
        break;
      default:
        break;
    }
    dest.append(priority, priority + std::strlen(priority));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

}  // namespace

void notifyReady(const std::string& status) {
  notify("READY=1\nSTATUS=" + status);
}

void notifyReloading() {
  notify("RELOADING=1\nSTATUS=reloading the policy files");
}

void notifyStopping() {
  notify("STOPPING=1\nSTATUS=stopping; enforcement stays pinned");
}

bool journalStreamNames(const char* journalStream, dev_t dev, ino_t ino) {
  if (journalStream == nullptr) {
    return false;
  }
  uintmax_t streamDev = 0;
  uintmax_t streamIno = 0;
  char trailing = 0;
  if (std::sscanf(journalStream, "%" SCNuMAX ":%" SCNuMAX "%c", &streamDev, &streamIno,
                  &trailing) != 2) {
    return false;
  }
  return streamDev == static_cast<uintmax_t>(dev) && streamIno == static_cast<uintmax_t>(ino);
}

bool stderrIsJournal() {
  const char* journalStream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (journalStream == nullptr || ::fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  return journalStreamNames(journalStream, st.st_dev, st.st_ino);
}

void setupLogging(const std::string& level) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("egressd"));
  if (stderrIsJournal()) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%v");
    spdlog::set_formatter(std::move(formatter));
  } else {
    spdlog::set_pattern("egressd %^%l%$: %v");
  }
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace egressd::daemon
