#!/usr/bin/env python3
"""kjv_book_split.py: re-split data/kjv by whole books (held-out books).

    python3 tools/kjv_book_split.py data/kjv runs/kjv_books

data/kjv (scripts/get_kjv_data.sh) splits the 1,189 chapters by a hash of
their heading, so every book is spread over train, valid and test. A language
model judged on held-out text should not have seen the rest of the same
chapter's book; this script gathers the chapters of the three files (each
starts at its "Book N" heading line), puts them back in Bible order and
writes OUT/{train,valid,test}.txt with whole books held out:

    valid: Joshua, Proverbs, Romans       (history, wisdom, epistle; 5.6% of the bytes)
    test:  Judges, John, Hebrews          (history, gospel, epistle; 5.7%)
    train: the other 60 books

and OUT/SOURCE with the rule and the sizes. Standard library only.
"""
import os
import sys

VALID = ("Joshua", "Proverbs", "Romans")
TEST = ("Judges", "John", "Hebrews")


def chapters(path):
    """[(book, number, text)] of one file, in file order."""
    out, cur = [], None
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    pend = []
    for line in lines:
        if line.strip() and not line[0].isspace():
            book, num = line.strip().rsplit(" ", 1)
            cur = [book, int(num), pend + [line]]
            out.append(cur)
            pend = []
        elif cur is None:
            pend.append(line)
        elif not line.strip() and cur is not None:
            pend.append(line)  # the blank line before the next heading (or a trailing one)
        else:
            cur[2].extend(pend)
            pend = []
            cur[2].append(line)
    if cur is not None:
        cur[2].extend(pend)
    return out


def main(argv):
    if len(argv) != 3:
        print("usage: kjv_book_split.py KJV_DIR OUT_DIR", file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    allch, order = [], {}
    for name in ("train", "valid", "test"):
        for book, num, text in chapters(os.path.join(src, name + ".txt")):
            allch.append((book, num, "".join(text)))
    # Bible order: data/kjv/train.txt holds chapters of every book in order
    for book, _, _ in allch:
        order.setdefault(book, len(order))
    for b in VALID + TEST:
        if b not in order:
            print("kjv_book_split.py: book %s not found in %s" % (b, src), file=sys.stderr)
            return 1
    if len(allch) != 1189:
        print("kjv_book_split.py: %d chapters, expected 1189" % len(allch), file=sys.stderr)
        return 1
    allch.sort(key=lambda c: (order[c[0]], c[1]))
    os.makedirs(dst, exist_ok=True)
    split = {"train": [], "valid": [], "test": []}
    for book, num, text in allch:
        s = "valid" if book in VALID else "test" if book in TEST else "train"
        split[s].append(text)
    info = ["KJV split by whole books (tools/kjv_book_split.py) from " + src,
            "valid: " + ", ".join(VALID), "test: " + ", ".join(TEST)]
    for s, parts in split.items():
        text = "".join(parts)
        with open(os.path.join(dst, s + ".txt"), "w", encoding="utf-8") as f:
            f.write(text)
        info.append("%s: %d chapters, %d bytes" % (s, len(parts), len(text.encode())))
    with open(os.path.join(dst, "SOURCE"), "w") as f:
        f.write("\n".join(info) + "\n")
    print("\n".join(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
