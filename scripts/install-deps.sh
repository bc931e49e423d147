#!/usr/bin/env bash
# Installs what egressd needs to build, test and demo on Debian 12 (as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  libyaml-cpp-dev libspdlog-dev libcxxopts-dev nlohmann-json3-dev node-llhttp libasio-dev
  libidn2-dev libpsl-dev libsystemd-dev libcurl4-openssl-dev
  libseccomp-dev libcap-dev libssl-dev libgtest-dev libgmock-dev clang-format git
  # packaging (packaging/CMakeLists.txt): man pages from --help, the .deb's Depends
  help2man dpkg-dev
  # fuzzing (scripts/fuzz.sh): clang 14 with its sanitizer and libFuzzer runtimes
  clang-14 libclang-rt-14-dev
  # static analysis (scripts/tidy.sh)
  clang-tidy
  # tests and demo: real servers and clients
  iproute2 dnsmasq-base bind9-dnsutils socat curl python3 procps
  # HTTP/2 (userspace/proxy/h2_*): the library, and real h2 servers and clients for the tests
  libnghttp2-dev nghttp2-server nghttp2-client python3-h2 python3-grpcio
  # benchmark: DNS load
  dnsperf
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: all dependencies present"
