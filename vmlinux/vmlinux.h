/* Arch dispatcher: the committed, per-arch vmlinux.h keeps builds independent
 * of the build host's kernel. Regenerate with scripts/gen-vmlinux.sh. */
#if defined(__TARGET_ARCH_x86)
#include "x86/vmlinux.h"
#else
#error "egressd: no committed vmlinux.h for this architecture (see scripts/gen-vmlinux.sh)"
#endif
