// verify's private test network, made with iproute2 (`ip`) and removed again, also after
// a failure (RAII) and at the next run after a SIGKILL (sweepStaleNetworks):
//
//   root netns  ev<pid>h 198.18.N.1/24  <->  ev<pid>p  198.18.N.2 (dns), .3 (origin), .4 (other)
//                                            netns "egressd-verify-<pid>-net"
//   sandbox netns "egressd-verify-<pid>-sb":  ev<pid>s 198.19.N.2/24 <-> ev<pid>t 198.19.N.1
//                                            (in the -net netns)
//
// The sandbox netns has a route to 198.18.N.0/24 only, and no default route: whatever the
// enforcer lets past cannot leave the namespaces verify made. egressd's proxy, in the root
// netns, reaches the origins over the first link. Only RFC 2544 benchmarking addresses
// (198.18.0.0/15) are used; N is a /24 no route of the root netns already covers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::verify {

class TestNetwork {
 public:
  static Result<std::unique_ptr<TestNetwork>> create();
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  std::string ip(int host) const;     // 198.18.N.host
  std::string internetNetns() const;  // /var/run/netns/egressd-verify-<pid>-net
  std::string sandboxNetns() const;   // /var/run/netns/egressd-verify-<pid>-sb
  // Both namespaces exist and the sandbox netns has no default route: checked before
  // anything is sent from it.
  Status checkIsolated() const;
  Status destroy();

 private:
  TestNetwork() = default;
  int n_ = 0;
  std::string prefix_;  // egressd-verify-<pid>
  std::string hostLink_;
  bool created_ = false;
};

// Removes namespaces and links of earlier verify runs whose process is gone.
void sweepStaleNetworks();

// Runs a command (no shell), returns its stdout; an error carries its stderr.
Result<std::string> runTool(const std::vector<std::string>& argv);

}  // namespace egressd::verify
