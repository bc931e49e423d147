// Test-owned network namespaces, veth pairs and the test "internet".
//
// TestNetwork layout (N is a free /24 picked per test process, under a lock):
//
//   root netns                      internet netns "egressd-test-<pid>-<n>"
//   egt<pid>x<k>h 198.18.N.1/24  <-> egt<pid>x<k>p 198.18.N.2, .3, .4 /24
//                 2001:db8:e9:N::1/64             2001:db8:e9:N::2, ::3, ::4 /64
//
//   optional sandbox netns (container-like sandbox):
//   egt..s 198.19.N.2/24, 2001:db8:e9:1NN::2/64  <->  198.19.N.1, 2001:db8:e9:1NN::1 (internet)
//   routes only to 198.18.N.0/24 and 2001:db8:e9:N::/64 (no default route: nothing else is
//   reachable from it), net.ipv4.ping_group_range opened so ping sockets are creatable there.
//
// Only RFC 2544 (198.18.0.0/15) and documentation (2001:db8:e9::/48) prefixes are used.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::test {

class TestNetns {
 public:
  // `ip netns add egressd-test-<pid>-<n>`.
  static Result<TestNetns> create();

  TestNetns(TestNetns&& other) noexcept;
  TestNetns& operator=(TestNetns&& other) noexcept;
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  // Kills processes still in it (by pid) and deletes it.
  ~TestNetns();

  const std::string& name() const { return name_; }
  // /var/run/netns/NAME: pass to setns (Process netnsPath, egressd --netns).
  std::string path() const { return "/var/run/netns/" + name_; }
  // The namespace file still exists and is a mounted nsfs.
  bool exists() const;
  // Runs argv inside the namespace (setns only, no `ip netns exec` remounts).
  Status exec(const std::vector<std::string>& argv) const;
  // Sets a per-netns sysctl, e.g. ("net.ipv4.ping_group_range", "0 2147483647").
  Status sysctl(const std::string& key, const std::string& value) const;
  Status destroy();

 private:
  explicit TestNetns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// Deletes a netns by name: kills its processes (by pid) and removes it.
Status deleteNetns(const std::string& name);

// A veth pair; deleting one end deletes both.
class VethPair {
 public:
  // Creates `hostName` in `hostNetns` (empty: root netns) and `peerName` in `peerNetns`.
  static Result<VethPair> create(const std::string& hostName, const std::string& peerName,
                                 const std::string& peerNetns, const std::string& hostNetns = "");
  VethPair(VethPair&& other) noexcept;
  VethPair& operator=(VethPair&&) = delete;
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  ~VethPair();

  const std::string& hostName() const { return host_; }
  const std::string& peerName() const { return peer_; }
  bool exists() const;
  Status destroy();

 private:
  VethPair(std::string host, std::string peer, std::string hostNetns)
      : host_(std::move(host)), peer_(std::move(peer)), hostNetns_(std::move(hostNetns)) {}
  std::string host_;
  std::string peer_;
  std::string hostNetns_;
};

struct TestNetworkOptions {
  // Also create a sandbox netns joined to the internet netns (container-like sandbox).
  bool sandboxNetns = false;
};

class TestNetwork {
 public:
  static Result<std::unique_ptr<TestNetwork>> create(const TestNetworkOptions& opts = {});
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  int subnet() const { return n_; }
  // "198.18.N.<host>" and "2001:db8:e9:<N hex>::<host hex>".
  std::string ip4(int host) const;
  std::string ip6(int host) const;
  // Addresses on the sandbox netns link: "198.19.N.<host>", "2001:db8:e9:1<NN>::<host>".
  std::string sandboxIp4(int host) const;
  std::string sandboxIp6(int host) const;
  const TestNetns& internet() const { return *internet_; }
  // nullptr unless created with sandboxNetns.
  const TestNetns* sandboxNetns() const { return sandbox_.get(); }
  // The sandbox netns's end of its veth (the scope of link-local addresses there); empty
  // unless created with sandboxNetns.
  std::string sandboxIfName() const { return sandboxLink_ ? sandboxLink_->hostName() : ""; }
  // Every namespace and link this network consists of still exists: call before sending.
  Status checkExists() const;

 private:
  TestNetwork() = default;
  int n_ = 0;
  std::unique_ptr<TestNetns> internet_;
  std::unique_ptr<TestNetns> sandbox_;
  std::unique_ptr<VethPair> uplink_;
  std::unique_ptr<VethPair> sandboxLink_;
};

}  // namespace egressd::test
