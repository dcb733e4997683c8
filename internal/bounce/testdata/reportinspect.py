"""Reads each message named on the command line with Python's email package
(policy=default), an independent parser, and prints as JSON what its
report parts say: the blocks of a delivery-status part, the fields of a
feedback-report part, and the returned message's Message-ID."""
import email
import email.policy
import json
import sys


def field(msg, name):
    v = msg.get(name)
    return None if v is None else " ".join(str(v).split())


def main():
    out = []
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        r = {"file": path, "defects": [type(d).__name__ for d in msg.defects],
             "blocks": [], "feedback": None, "original_id": None}
        for part in msg.walk():
            ctype = part.get_content_type()
            r["defects"] += [type(d).__name__ for d in part.defects]
            if ctype in ("message/delivery-status", "message/global-delivery-status"):
                payload = part.get_payload()
                if ctype == "message/global-delivery-status":
                    # Python reads it as one message: its blocks, split.
                    text = payload[0].as_bytes().decode() if isinstance(payload, list) else payload
                    payload = [email.message_from_string(b, policy=email.policy.default)
                               for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
                for block in payload:
                    r["blocks"].append({k: field(block, k) for k in
                                        ("Action", "Status", "Final-Recipient", "Original-Recipient", "Diagnostic-Code")})
            elif ctype == "message/feedback-report":
                fb = email.message_from_string(part.get_payload(), policy=email.policy.default) \
                    if isinstance(part.get_payload(), str) else part.get_payload()[0]
                r["feedback"] = {"type": field(fb, "Feedback-Type"),
                                 "rcpt": [str(v).strip() for v in fb.get_all("Original-Rcpt-To", [])]}
            elif ctype in ("message/rfc822", "text/rfc822-headers", "message/global-headers") and r["original_id"] is None:
                payload = part.get_payload()
                inner = payload[0] if isinstance(payload, list) else \
                    email.message_from_string(part.get_content() if ctype.startswith("text/") else payload,
                                              policy=email.policy.default)
                mid = inner.get("Message-ID")
                r["original_id"] = None if mid is None else str(mid).strip().strip("<>")
        out.append(r)
    json.dump(out, sys.stdout)


main()
