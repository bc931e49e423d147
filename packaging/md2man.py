#!/usr/bin/env python3
"""Markdown (the subset docs/*.md use) to a man(7) page, so a man page is generated from the
same text as the docs instead of a hand-kept copy. pandoc would do it too, but it is a
~100 MB dependency for one page; the docs use only headings, paragraphs, fenced code,
pipe tables, bullet lists, `code`, **bold** and [links](...), which this covers.

  md2man.py --name egressd-policy --section 5 --version 0.1.0 \
      --summary "egressd policy file format" --synopsis "/etc/egressd/policies/*.yaml" \
      --see-also "egressd(8),egressctl(8)" docs/policy.md > egressd-policy.5

Pipe tables become tagged paragraphs (.TP: the first cell is the tag), which read well at
any terminal width. Every non-ASCII character becomes a groff \\[uXXXX] escape, so the page
needs no input encoding. `--self-test` checks the conversion of a sample.
"""

import argparse
import re
import sys


def escape(text):
    """Plain text for roff: backslashes, then non-ASCII as \\[uXXXX]."""
    text = text.replace("\\", "\\e")
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)


def inline(text):
    """One line of Markdown inline markup to roff (fonts restored with \\fR)."""
    out = []
    # `code` first: nothing inside it is markup.
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2 == 1:
            out.append("\\fB" + escape(part).replace("-", "\\-") + "\\fR")
            continue
        part = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", part)  # [text](target) -> text
        part = escape(part)
        part = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", part)
        out.append(part)
    return "".join(out)


def line_start_safe(line):
    """A roff text line must not start with a control character ('.' or "'")."""
    return "\\&" + line if line[:1] in (".", "'") else line


def split_row(line):
    cells = line.strip().strip("|").split("|")
    return [c.strip() for c in cells]


def is_table_separator(line):
    return re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?", line.strip()) is not None


def convert_body(lines):
    out = []
    paragraph = []

    def flush():
        if paragraph:
            out.append(".PP")
            out.extend(line_start_safe(inline(p)) for p in paragraph)
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\n")
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            out.extend([".PP", ".RS 4", ".nf"])
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                out.append(line_start_safe(escape(lines[i].rstrip("\n"))))
                i += 1
            out.extend([".fi", ".RE"])
            i += 1
            continue
        if stripped.startswith("#"):
            flush()
            level = len(stripped) - len(stripped.lstrip("#"))
            title = stripped[level:].strip()
            if level <= 2:
                out.append('.SH "%s"' % escape(title.upper()).replace('"', ""))
            else:
                out.append('.SS "%s"' % escape(title).replace('"', ""))
            i += 1
            continue
        if stripped.startswith("|") and i + 1 < len(lines) and is_table_separator(lines[i + 1]):
            flush()
            header = split_row(stripped)
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = split_row(lines[i])
                out.extend([".TP", line_start_safe(inline(cells[0]))])
                first = True
                for column, cell in enumerate(cells[1:], start=1):
                    if not cell:
                        continue
                    # Beyond two columns the header says what a cell is ("arguments: ...").
                    name = header[column] if len(header) > 2 and column < len(header) else ""
                    if not first:
                        out.append(".br")
                    out.append(line_start_safe((escape(name) + ": " if name else "") + inline(cell)))
                    first = False
                i += 1
            continue
        bullet = re.match(r"^\s*(?:[-*]|\d+\.)\s+(.*)$", line)
        if bullet:
            flush()
            out.extend([".IP \\(bu 2", line_start_safe(inline(bullet.group(1)))])
            i += 1
            # Continuation lines of the item (indented, not a new item or block).
            while (i < len(lines) and lines[i].startswith("  ") and lines[i].strip()
                   and not re.match(r"^\s*(?:[-*]|\d+\.)\s+", lines[i])):
                out.append(line_start_safe(inline(lines[i].strip())))
                i += 1
            continue
        if not stripped:
            flush()
        else:
            paragraph.append(stripped)
        i += 1
    flush()
    return out


def convert(markdown, name, section, version, summary, synopsis, see_also):
    lines = markdown.splitlines()
    # The document's own title (# ...) is replaced by NAME.
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    out = [
        '.TH "%s" "%s" "" "egressd %s" "egressd"' % (name.upper(), section, escape(version)),
        # Option names and paths must not be hyphenated; ragged right reads better.
        ".nh",
        ".ad l",
        ".SH NAME",
        "%s \\- %s" % (escape(name).replace("-", "\\-"), escape(summary)),
    ]
    if synopsis:
        out.extend([".SH SYNOPSIS", line_start_safe(escape(synopsis))])
    out.append(".SH DESCRIPTION")
    out.extend(convert_body(lines))
    if see_also:
        refs = [r.strip() for r in see_also.split(",") if r.strip()]
        out.extend([".SH \"SEE ALSO\"", ", ".join(
            "\\fB%s\\fR%s" % (escape(r.split("(")[0]).replace("-", "\\-"), r[r.find("("):])
            for r in refs)])
    return "\n".join(out) + "\n"


SAMPLE = """# Title

Intro `a-b` and **bold** with [a link](x.md) \u2264 5.
.starts with a dot

## Fields

| field | meaning |
|---|---|
| `name` | required |

| action | arguments | |
|---|---|---|
| `deny` | `status` | ends the chain |

```yaml
.key: \\value
```

- one item
  continued
"""

EXPECTED = """.TH "T" "5" "" "egressd 1" "egressd"
.nh
.ad l
.SH NAME
t \\- s
.SH DESCRIPTION
.PP
Intro \\fBa\\-b\\fR and \\fBbold\\fR with a link \\[u2264] 5.
\\&.starts with a dot
.SH "FIELDS"
.TP
\\fBname\\fR
required
.TP
\\fBdeny\\fR
arguments: \\fBstatus\\fR
.br
ends the chain
.PP
.RS 4
.nf
\\&.key: \\evalue
.fi
.RE
.IP \\(bu 2
one item
continued
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?")
    parser.add_argument("--name")
    parser.add_argument("--section", default="5")
    parser.add_argument("--version", default="")
    parser.add_argument("--summary", default="")
    parser.add_argument("--synopsis", default="")
    parser.add_argument("--see-also", default="")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        got = convert(SAMPLE, "t", "5", "1", "s", "", "")
        if got != EXPECTED:
            sys.stderr.write("md2man self-test failed; got:\n" + got)
            return 1
        print("md2man self-test passed")
        return 0
    if not args.input or not args.name:
        parser.error("INPUT and --name are required")
    with open(args.input, encoding="utf-8") as f:
        sys.stdout.write(convert(f.read(), args.name, args.section, args.version, args.summary,
                                 args.synopsis, args.see_also))
    return 0


if __name__ == "__main__":
    sys.exit(main())
