#include "http_client.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

namespace egressd::e2e {

std::string clientsDir() {
#ifdef EGRESSD_E2E_CLIENTS_DIR
  return EGRESSD_E2E_CLIENTS_DIR;
#else
  return "tests/e2e/clients";
#endif
}

namespace {

using nlohmann::json;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses a response head at the start of `data`; returns its length (through the blank
// line), or npos when it is incomplete or not a response.
size_t parseHead(std::string_view data, HttpResponse& r) {
  const size_t end = data.find("\r\n\r\n");
  if (!data.starts_with("HTTP/") || end == std::string_view::npos) {
    return std::string_view::npos;
  }
  std::string_view head = data.substr(0, end);
  size_t eol = head.find("\r\n");
  const std::string_view statusLine = head.substr(0, eol);
  const size_t sp = statusLine.find(' ');
  if (sp == std::string_view::npos) {
    return std::string_view::npos;
  }
  r.status = std::atoi(std::string(statusLine.substr(sp + 1, 3)).c_str());
  r.reason = sp + 5 <= statusLine.size() ? std::string(statusLine.substr(sp + 5)) : "";
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      r.headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
    }
  }
  return end + 4;
}

// Decodes a chunked body at the start of `data`; returns the bytes it took, or npos.
size_t dechunk(std::string_view data, std::string& body) {
  size_t pos = 0;
  for (;;) {
    const size_t eol = data.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      return std::string_view::npos;
    }
    const size_t size = std::strtoul(std::string(data.substr(pos, eol - pos)).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) {
      // Trailer fields, if any, then the blank line.
      if (data.substr(pos).starts_with("\r\n")) {
        return pos + 2;
      }
      const size_t trailerEnd = data.find("\r\n\r\n", pos);
      return trailerEnd == std::string_view::npos ? std::string_view::npos : trailerEnd + 4;
    }
    if (data.size() < pos + size + 2) {
      return std::string_view::npos;
    }
    body.append(data.substr(pos, size));
    pos += size + 2;
  }
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

std::vector<HttpResponse> parseResponses(std::string_view data,
                                         const std::vector<size_t>& answersToHead) {
  std::vector<HttpResponse> out;
  size_t finals = 0;  // final (non-1xx) responses so far: the index answersToHead counts
  while (!data.empty()) {
    HttpResponse r;
    const size_t headLen = parseHead(data, r);
    if (headLen == std::string_view::npos) {
      break;
    }
    data.remove_prefix(headLen);
    const bool interim = r.status >= 100 && r.status < 200 && r.status != 101;
    const bool toHead = !interim && std::find(answersToHead.begin(), answersToHead.end(), finals) !=
                                        answersToHead.end();
    finals += interim ? 0 : 1;
    const bool noBody =
        (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304 || toHead;
    if (noBody) {
      out.push_back(std::move(r));
      if (out.back().status == 101) {
        break;  // what follows is another protocol
      }
      continue;
    }
    if (lower(r.header("transfer-encoding")).find("chunked") != std::string::npos) {
      const size_t used = dechunk(data, r.body);
      if (used == std::string_view::npos) {
        break;
      }
      data.remove_prefix(used);
    } else if (!r.header("content-length").empty()) {
      const size_t n = std::strtoul(r.header("content-length").c_str(), nullptr, 10);
      if (data.size() < n) {
        break;
      }
      r.body = std::string(data.substr(0, n));
      data.remove_prefix(n);
    } else {
      r.body = std::string(data);
      data = {};
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string hostPort(const std::string& ip, int port) {
  return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

const HttpResponse& CurlReply::last() const {
  static const HttpResponse none;
  return responses.empty() ? none : responses.back();
}

std::string CurlReply::describe() const {
  std::ostringstream s;
  s << "status " << status();
  if (!responses.empty()) {
    for (const auto& [k, v] : last().headers) {
      s << "\n  " << k << ": " << v;
    }
    s << "\n  body: " << last().body.substr(0, 2000);
  }
  s << "\n  curl: " << run.describe();
  return s.str();
}

CurlReply curlIn(const Sandbox& sb, const std::vector<std::string>& args,
                 test::milliseconds timeout) {
  std::vector<std::string> argv{"curl", "--noproxy", "*", "-sS", "--max-time",
                                "10",   "-D",        "-", "-o",  "-"};
  argv.insert(argv.end(), args.begin(), args.end());
  CurlReply reply;
  reply.run = sb.runInside(argv, "", timeout);
  // -D - and -o - both go to stdout: every head (interim ones too), then the final body.
  std::string_view out = reply.run.out;
  while (out.starts_with("HTTP/")) {
    HttpResponse r;
    const size_t headLen = parseHead(out, r);
    if (headLen == std::string_view::npos) {
      break;
    }
    out.remove_prefix(headLen);
    const bool interim = r.status >= 100 && r.status < 200 && r.status != 101;
    reply.responses.push_back(std::move(r));
    if (!interim) {
      reply.responses.back().body = std::string(out);
      break;
    }
  }
  return reply;
}

int RawExchange::firstStatus() const {
  auto r = responses();
  return r.empty() ? 0 : r.front().status;
}

std::string RawExchange::describe() const {
  std::ostringstream s;
  s << "end=" << end << " after " << seconds << " s";
  if (!sendError.empty()) {
    s << ", send error: " << sendError;
  }
  if (!connectError.empty()) {
    s << ", connect error: " << connectError;
  }
  s << "\n  received: " << data.substr(0, 3000) << "\n  client: " << run.describe();
  return s.str();
}

RawExchange rawHttpIn(const Sandbox& sb, const std::string& endpoint,
                      const std::vector<std::string>& payloads, const RawOptions& options) {
  std::vector<std::string> argv{test::python3Bin(),
                                clientsDir() + "/raw_http.py",
                                "--connect",
                                endpoint,
                                "--gap",
                                std::to_string(options.gapSeconds),
                                "--drip",
                                std::to_string(options.dripSeconds),
                                "--read-timeout",
                                std::to_string(options.readTimeoutSeconds)};
  if (options.shutdown) {
    argv.push_back("--shutdown");
  }
  size_t bytes = 0;
  for (const auto& p : payloads) {
    argv.push_back("--send");
    argv.push_back(p);
    bytes += p.size();
  }
  const double budget = options.readTimeoutSeconds + options.gapSeconds * payloads.size() +
                        options.dripSeconds * static_cast<double>(bytes) + 10;
  RawExchange x;
  const auto timeout = test::milliseconds(static_cast<int64_t>(budget * 1000));
  x.run = options.outsideSandbox ? runGuarded(argv, "", sb.netnsPath(), timeout)
                                 : sb.runInside(argv, "", timeout);
  auto j = json::parse(x.run.out, nullptr, false);
  if (x.run.succeeded() && j.is_object()) {
    x.data = j.value("data", "");
    x.end = j.value("end", "");
    x.seconds = j.value("seconds", 0.0);
    x.sendError = j.value("send_error", "");
    x.connectError = j.value("connect_error", "");
  }
  return x;
}

Result<nlohmann::json> pythonClientIn(const Sandbox& sb, const std::string& script,
                                      const std::vector<std::string>& args,
                                      test::milliseconds timeout) {
  std::vector<std::string> argv{test::python3Bin(), clientsDir() + "/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = sb.runInside(argv, "", timeout);
  if (!r.succeeded()) {
    return Error(EIO, test::joinArgv(argv) + ": " + r.describe());
  }
  auto j = json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(EINVAL, test::joinArgv(argv) + ": output is not a JSON object: " + r.out);
  }
  return j;
}

std::function<bool(const nlohmann::json&)> auditWith(const nlohmann::json& fields) {
  return [fields](const json& record) {
    for (const auto& [key, value] : fields.items()) {
      if (!record.contains(key) || record[key] != value) {
        return false;
      }
    }
    return true;
  };
}

}  // namespace egressd::e2e
