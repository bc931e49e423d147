#include "kubernetes/api_client.h"

#include <curl/curl.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "common/fs.h"

namespace egressd::kubernetes {
namespace {

constexpr size_t kMaxBody = 64UL * 1024 * 1024;  // a PodList of a full node is a few MB
constexpr size_t kMaxLine = 16UL * 1024 * 1024;  // one watch event (one pod)

void initCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// "http://HOST[:PORT][/...]" with HOST localhost, [::1] or a dotted 127.x.y.z.
bool loopbackHost(std::string_view server) {
  constexpr std::string_view kScheme = "http://";
  if (server.substr(0, kScheme.size()) != kScheme) {
    return false;
  }
  std::string_view rest = server.substr(kScheme.size());
  std::string_view host;
  if (rest.substr(0, 1) == "[") {
    host =
        rest.substr(0, rest.find(']') == std::string_view::npos ? rest.size() : rest.find(']') + 1);
  } else {
    host = rest.substr(0, rest.find_first_of(":/"));
  }
  const std::string_view after = rest.substr(host.size());
  if (!after.empty() && after[0] != ':' && after[0] != '/') {
    return false;
  }
  if (host == "localhost" || host == "[::1]") {
    return true;
  }
  int parts = 0;
  for (size_t start = 0; start <= host.size(); ++parts) {
    size_t dot = host.find('.', start);
    std::string_view part = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty() || part.size() > 3 ||
        part.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    start = dot == std::string_view::npos ? host.size() + 1 : dot + 1;
  }
  return parts == 4 && host.substr(0, 4) == "127.";
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// What the write and progress callbacks share.
struct Transfer {
  const std::function<bool(std::string_view)>* onLine = nullptr;  // nullptr: keep the body
  const std::function<bool()>* onTick = nullptr;
  long status = 0;
  std::string body;     // a plain GET's body, or a failed stream's
  std::string pending;  // a stream's incomplete line
  bool stoppedByCallback = false;
  bool tooLarge = false;
  CURL* curl = nullptr;
};

size_t onData(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->status == 0) {
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  }
  const bool streaming = t->onLine != nullptr && t->status >= 200 && t->status < 300;
  if (!streaming) {
    if (t->body.size() + n > kMaxBody) {
      t->tooLarge = true;
      return 0;
    }
    t->body.append(data, n);
    return n;
  }
  t->pending.append(data, n);
  size_t start = 0;
  for (size_t nl = t->pending.find('\n'); nl != std::string::npos;
       nl = t->pending.find('\n', start)) {
    std::string_view line(t->pending.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && !(*t->onLine)(line)) {
      t->stoppedByCallback = true;
      return 0;
    }
  }
  t->pending.erase(0, start);
  if (t->pending.size() > kMaxLine) {
    t->tooLarge = true;
    return 0;
  }
  return n;
}

int onProgress(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
               curl_off_t /*ulnow*/) {
  auto* t = static_cast<Transfer*>(user);
  if (t->onTick != nullptr && !(*t->onTick)()) {
    t->stoppedByCallback = true;
    return 1;  // aborts the transfer
  }
  return 0;
}

}  // namespace

Result<ApiConfig> resolveApiConfig(const std::string& server, const std::string& tokenFile,
                                   const std::string& caFile) {
  ApiConfig config;
  config.server = server;
  if (config.server.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (host == nullptr || *host == '\0') {
      return Error(EINVAL,
                   "no Kubernetes API server: give --kube-api URL or run in a pod "
                   "(KUBERNETES_SERVICE_HOST is not set)");
    }
    const std::string h(host);
    config.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" +
                    (port != nullptr && *port != '\0' ? port : "443");
  }
  while (!config.server.empty() && config.server.back() == '/') {
    config.server.pop_back();
  }
  const bool https = config.server.rfind("https://", 0) == 0;
  if (!https && !loopbackHost(config.server)) {
    return Error(EINVAL, "--kube-api " + config.server +
                             ": use https:// (plain http:// only to a loopback address, "
                             "since the bearer token would travel in clear text)");
  }
  config.tokenFile = tokenFile.empty() ? std::string(kServiceAccountDir) + "/token" : tokenFile;
  if (!pathExists(config.tokenFile)) {
    return Error(EINVAL, "Kubernetes token file " + config.tokenFile +
                             " does not exist (--kube-token-file; in a pod: "
                             "automountServiceAccountToken)");
  }
  if (https) {
    config.caFile = caFile.empty() ? std::string(kServiceAccountDir) + "/ca.crt" : caFile;
    if (!pathExists(config.caFile)) {
      return Error(EINVAL,
                   "Kubernetes CA file " + config.caFile + " does not exist (--kube-ca-file)");
    }
  }
  return config;
}

ApiClient::ApiClient(ApiConfig config) : config_(std::move(config)) {
  initCurlOnce();
}

namespace {

Result<ApiResponse> perform(const ApiConfig& config, const std::string& pathAndQuery,
                            Transfer& transfer, long timeoutSeconds) {
  CurlPtr curl(curl_easy_init());
  if (!curl) {
    return Error(ENOMEM, "curl_easy_init failed");
  }
  transfer.curl = curl.get();
  SlistPtr headers(curl_slist_append(nullptr, "Accept: application/json"));
  if (!config.tokenFile.empty()) {
    auto token = readFile(config.tokenFile);
    if (!token.ok()) {
      return std::move(token).error().wrap("Kubernetes token");
    }
    while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) {
      token->pop_back();
    }
    headers.reset(
        curl_slist_append(headers.release(), ("Authorization: Bearer " + *token).c_str()));
  }
  const std::string url = config.server + pathAndQuery;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeoutSeconds);
  // A watch is quiet for minutes when nothing changes; keepalive notices a dead peer.
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 10L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!config.caFile.empty()) {
    curl_easy_setopt(c, CURLOPT_CAINFO, config.caFile.c_str());
  }
  // The API server's own proxy settings, not the daemon environment's, apply in a cluster.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  char errorText[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errorText);
  const CURLcode code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &transfer.status);
  if (transfer.tooLarge) {
    return Error(EMSGSIZE, "GET " + url + ": the answer is larger than egressd accepts");
  }
  if (code != CURLE_OK && !transfer.stoppedByCallback) {
    return Error(EIO,
                 "GET " + url + ": " +
                     (errorText[0] != '\0' ? std::string(errorText) : curl_easy_strerror(code)));
  }
  return ApiResponse{transfer.status, std::move(transfer.body)};
}

}  // namespace

Result<ApiResponse> ApiClient::get(const std::string& pathAndQuery,
                                   const std::function<bool()>* onTick, long timeoutSeconds) const {
  Transfer transfer;
  transfer.onTick = onTick;
  auto response = perform(config_, pathAndQuery, transfer, timeoutSeconds);
  if (response.ok() && transfer.stoppedByCallback) {
    return Error(EINTR, "GET " + pathAndQuery + ": abandoned");
  }
  return response;
}

Result<ApiResponse> ApiClient::stream(const std::string& pathAndQuery,
                                      const std::function<bool(std::string_view)>& onLine,
                                      const std::function<bool()>& onTick,
                                      long timeoutSeconds) const {
  Transfer transfer;
  transfer.onLine = &onLine;
  transfer.onTick = &onTick;
  return perform(config_, pathAndQuery, transfer, timeoutSeconds);
}

std::string queryEscape(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace egressd::kubernetes
