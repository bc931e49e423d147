#!/usr/bin/env bash
# Regenerates the committed vmlinux.h from a kernel's BTF (default: the running kernel).
# Usage: scripts/gen-vmlinux.sh [BTF_FILE] [ARCH_DIR]
set -euo pipefail
btf="${1:-/sys/kernel/btf/vmlinux}"
arch="${2:-x86}"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$root/vmlinux/$arch"
bpftool btf dump file "$btf" format c >"$root/vmlinux/$arch/vmlinux.h.tmp"
mv "$root/vmlinux/$arch/vmlinux.h.tmp" "$root/vmlinux/$arch/vmlinux.h"
echo "wrote vmlinux/$arch/vmlinux.h from $btf"
