// Who a sandboxed command runs as (`egressd run --user`). Resolved in the parent (passwd and
// group lookups allocate); applied in the child with raw syscalls only.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

struct RunAsUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (the user's, from /etc/group); may be empty
  std::string name;           // passwd name, or the number when the uid has no entry
  std::string home;           // passwd home directory; "/" when none or it does not exist
  bool isRoot() const { return uid == 0; }
};

// `spec` is NAME, UID, NAME:GROUP or UID:GID (GROUP a name or number). An empty spec is the
// default: the user that invoked sudo (SUDO_UID, SUDO_GID) when that is not root, otherwise
// "nobody". A known user gets its primary group (unless one is given) and its supplementary
// groups; a bare number without a passwd entry gets gid = GID if given, else the same number,
// and no supplementary groups. Errors name the spec.
Result<RunAsUser> resolveRunAsUser(const std::string& spec, const char* sudoUid,
                                   const char* sudoGid);

}  // namespace egressd::sandbox
