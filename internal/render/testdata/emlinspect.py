#!/usr/bin/env python3
"""emlinspect.py - independent .eml checker used by batch's Go tests.

The Go tests write messages with batch's own renderer and then run this script
so that a *different* MIME implementation (Python's standard `email` package,
policy=email.policy.default) parses them.  Anything Python considers broken
shows up in "defects"; the decoded headers, addresses, MIME tree and part
contents let the tests check that what batch meant to send is what a real
mail client would see.  Standard library only.

Usage: python3 emlinspect.py FILE.eml [FILE.eml ...]
Prints one JSON list (one object per file, in argument order) to stdout.
Exit 0 when every file was read (even if defects were found); non-zero with a
message on stderr on usage errors or unreadable files.
"""
import email
import email.policy
import hashlib
import json
import re
import sys

POLICY = email.policy.default
LINE_SPLIT = re.compile(rb"\r\n|\n|\r")           # physical lines, any ending
NON_CRLF = re.compile(rb"(?<!\r)\n|\r(?!\n)")      # bare LF or bare CR
RFC822_CT = re.compile(r"^content-type:[ \t]*message/rfc822", re.I | re.M)


def safe(fn, default=None):
    """Call fn(); on any exception return default (never crash on odd input)."""
    try:
        return fn()
    except Exception:
        return default


def label(index):
    return "top" if index == 0 else str(index)


def fmt_defect(where, what, defect):
    return "%s: %s: %s: %s" % (where, what, type(defect).__name__, defect)


def addresses(msg, name):
    """All addresses of every `name` header (normally there is just one)."""
    out = []
    for hdr in safe(lambda: msg.get_all(name), None) or []:
        for a in safe(lambda: hdr.addresses, ()) or ():
            out.append({"name": a.display_name, "addr": a.addr_spec})
    return out


def optional_str(msg, name):
    value = safe(lambda: msg[name])
    return None if value is None else str(value)


def raw_value(msg, name):
    """Undecoded header value, unfolded and stripped (None if absent)."""
    for k, v in msg.raw_items():
        if k.lower() == name.lower():
            return re.sub(r"\r?\n", "", v).strip()
    return None


def tree(part, index_of, defects):
    """Nested description of the MIME structure; decodes leaf payloads."""
    idx = index_of.get(id(part), -1)
    node = {"part": idx, "type": safe(part.get_content_type, "")}
    if part.is_multipart():
        kids = safe(part.get_payload, []) or []
        node["children"] = [tree(k, index_of, defects) for k in kids]
        return node
    # Decoding may append defects (e.g. base64 padding) to part.defects, which
    # is why the tree is built before the defects are collected.
    data = safe(lambda: part.get_payload(decode=True), b"") or b""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    text = None
    if node["type"].startswith("text/"):
        try:
            text = part.get_content()
        except Exception as e:  # unknown charset, undecodable payload, ...
            defects.append("%s: body: DecodeError: %r" % (label(idx), e))
    node.update({
        "charset": safe(part.get_content_charset),
        "disposition": safe(part.get_content_disposition),
        "filename": safe(part.get_filename),
        "content_id": optional_str(part, "content-id"),
        "cte": optional_str(part, "content-transfer-encoding"),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "text": text,
    })
    return node


def header_line_max(raw, msg):
    """Longest physical line inside any header block (top level and parts).

    Header blocks: the start of the file, the lines after each non-closing
    boundary delimiter of any multipart in the parsed message, and the body of
    a part whose headers declare message/rfc822.  Each block ends at the first
    empty line."""
    boundaries = set()
    for p in msg.walk():
        b = safe(p.get_boundary)
        if b:
            boundaries.add(("--" + b).encode("utf-8", "surrogateescape"))
    longest, in_hdr, block = 0, True, []
    for line in LINE_SPLIT.split(raw):
        if in_hdr:
            if line == b"":
                # an embedded message starts with its own header block
                in_hdr = bool(RFC822_CT.search(
                    b"\n".join(block).decode("latin-1")))
                block = []
                continue
            longest = max(longest, len(line))
            block.append(line)
        elif line.rstrip(b" \t") in boundaries:
            in_hdr, block = True, []
    return longest


def inspect(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=POLICY)
    parts = list(msg.walk())
    index_of = {id(p): i for i, p in enumerate(parts)}
    defects = []
    structure = safe(lambda: tree(msg, index_of, defects), {})
    for i, part in enumerate(parts):
        defects += [fmt_defect(label(i), "body", d) for d in part.defects]
        for name, value in part.raw_items():
            try:
                parsed = POLICY.header_fetch_parse(name, value)
            except Exception as e:
                defects.append("%s: %s: HeaderParseError: %r" % (label(i), name, e))
                continue
            defects += [fmt_defect(label(i), name, d)
                        for d in getattr(parsed, "defects", ())]
    headers = []
    for name, value in msg.raw_items():
        headers.append([name, str(safe(lambda: POLICY.header_fetch_parse(name, value), value))])
    lines = LINE_SPLIT.split(raw)
    return {
        "file": path,
        "defects": defects,
        "headers": headers,
        "raw_header_lines": safe(lambda: header_line_max(raw, msg), -1),
        "raw_max_line": max((len(l) for l in lines), default=0),
        "non_ascii_raw": any(b > 127 for b in raw),
        "crlf": NON_CRLF.search(raw) is None,
        "from": addresses(msg, "from"),
        "to": addresses(msg, "to"),
        "reply_to": addresses(msg, "reply-to"),
        "cc": addresses(msg, "cc"),
        "bcc": addresses(msg, "bcc"),
        "subject": optional_str(msg, "subject"),
        "message_id": safe(lambda: raw_value(msg, "message-id")),
        "date": optional_str(msg, "date"),
        "tree": structure,
    }


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: emlinspect.py FILE.eml [FILE.eml ...]\n")
        return 2
    results = []
    for path in argv[1:]:
        try:
            results.append(inspect(path))
        except OSError as e:
            sys.stderr.write("emlinspect: %s: %s\n" % (path, e))
            return 1
    # ensure_ascii keeps output valid even for surrogate-escaped raw bytes
    json.dump(results, sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
