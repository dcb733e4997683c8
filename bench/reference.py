#!/usr/bin/env python3
"""The classic approach, as a reference for batch's benchmark.

Python's email package builds each message of the standard benchmark
campaign the way tutorials do (EmailMessage, set_content, add_alternative,
add_related for the image) and writes it as an .eml file: a dry run.
Usage: reference.py CAMPAIGN_DIR OUT_DIR. Prints the message count.
"""
import csv
import html
import os
import sys
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid, formatdate


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src, "template.md"), encoding="utf-8") as f:
        template = f.read()
    with open(os.path.join(src, "logo.png"), "rb") as f:
        logo = f.read()
    n = 0
    with open(os.path.join(src, "recipients.csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            n += 1
            text = template
            for k, v in row.items():
                text = text.replace("{{." + k + "}}", v)
            msg = EmailMessage()
            msg["From"] = Address("Python爱好者", "news", "example.org")
            msg["To"] = Address(row["name"], addr_spec=row["email"])
            msg["Subject"] = "来自SMTP的问候…… " + row["name"]
            msg["Date"] = formatdate()
            msg["Message-ID"] = make_msgid(domain="example.org")
            msg.set_content(text)
            cid = make_msgid(domain="example.org")
            paragraphs = "".join("<p>%s</p>" % html.escape(p) for p in text.split("\n\n"))
            msg.add_alternative('<html><body><img src="cid:%s" alt="logo">%s</body></html>' % (cid[1:-1], paragraphs), subtype="html")
            msg.get_payload()[1].add_related(logo, "image", "png", cid=cid, filename="logo.png")
            with open(os.path.join(out, "%07d.eml" % n), "wb") as w:
                w.write(msg.as_bytes())
    print(n)


if __name__ == "__main__":
    main()
