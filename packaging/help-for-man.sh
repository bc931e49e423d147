#!/bin/sh
# What help2man runs instead of the binary ($EGRESSD_HELP_OF): its own --version, and its own
# --help reshaped only where help2man's heuristics need it, so the man page comes from the
# same text as --help: "usage:" becomes "Usage:" (help2man's SYNOPSIS), and an indented line
# that is no option (a verb, a mode's summary) becomes a paragraph of its own instead of
# being run together with its neighbours, unless it continues a column-0 paragraph
# ("run options (...): ...", which is neither a "heading:" nor an "egressd MODE" line).
set -e
if [ "$1" = "--help" ]; then
  "$EGRESSD_HELP_OF" --help | awk '
    !synopsis && /^usage: / { sub(/^usage: /, "Usage: "); synopsis = 1 }
    /^$/ { continues = 0 }
    /^[^ ]/ { continues = ($0 !~ /:$/ && $0 !~ /^egressd /) }
    /^  [^ -]/ && !continues { print ""; print; print ""; next }
    { print }'
else
  exec "$EGRESSD_HELP_OF" "$@"
fi
