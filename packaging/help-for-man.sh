#!/bin/sh
# What help2man runs instead of the binary ($EGRESSD_HELP_OF): its own --version, and its own
# --help reshaped only where help2man's heuristics need it, so the man page comes from the
# same text as --help: "usage:" becomes "Usage:" (help2man's SYNOPSIS), and each line that
# is neither an option nor a continuation (a verb, a mode's summary) becomes a paragraph of
# its own instead of being run together with its neighbours.
set -e
if [ "$1" = "--help" ]; then
  "$EGRESSD_HELP_OF" --help | awk '
    !synopsis && /^usage: / { sub(/^usage: /, "Usage: "); synopsis = 1 }
    /^  [^ -]/ { print ""; print; print ""; next }
    { print }'
else
  exec "$EGRESSD_HELP_OF" "$@"
fi
