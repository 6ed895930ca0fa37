#!/usr/bin/env python3
"""Every relative link in README.md and docs/*.md names a file that exists,
and every #anchor a heading of the page it points to; README.md stays a
front page of at most 20 KB.

Run from anywhere: python3 scripts/doclinks.py
"""
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
README_MAX = 20 * 1024
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's anchors for the headings of a Markdown file."""
    out, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#{1,6} (.*)", line)
        if m:
            a = m.group(1).strip().lower()
            a = re.sub(r"[^\w\- ]", "", a).replace(" ", "-")
            out.add(a)
    return out


def links(path):
    fence = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for target in LINK.findall(line):
            yield n, target


def main():
    pages = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    bad = []
    for page in pages:
        rel = os.path.relpath(page, ROOT)
        for n, target in links(page):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
            if not os.path.exists(dest):
                bad.append(f"{rel}:{n}: {target}: no such file")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append(f"{rel}:{n}: {target}: no such heading")
    size = os.path.getsize(os.path.join(ROOT, "README.md"))
    if size > README_MAX:
        bad.append(f"README.md: {size} bytes, over {README_MAX}")
    for b in bad:
        print(f"doclinks: {b}")
    if bad:
        sys.exit(1)
    print(f"doclinks: {len(pages)} pages, every relative link resolves; README.md {size} bytes")


if __name__ == "__main__":
    main()
