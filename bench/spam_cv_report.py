#!/usr/bin/env python3
"""spam_cv_report.py - the summary of bench/spam-cv: spam caught and ham
flagged over all folds at the threshold and around it, the scores near
the threshold, and the rules that fire most on the errors.

    spam_cv_report.py WORKDIR FOLDS THRESHOLD [SAVEFILE]

Reads WORKDIR/f<k>/scan.json (one `moat scan --json` line per message;
its "file" is WORKDIR/f<k>/spam/... or WORKDIR/f<k>/ham/...) and
WORKDIR/f<k>/test.labels (to count messages the scan did not score).
SAVEFILE, when given, gets one line per message: "spam|ham SCORE PATH
SYMBOL,...", PATH the corpus file."""
import collections
import json
import os
import sys

OTHERS = (4.0, 4.5, 5.5, 6.0)
TOP = 15


def load(work, first, folds):
    msgs = {"spam": [], "ham": []}
    expected = collections.Counter()
    for k in range(first, folds):
        d = os.path.join(work, "f%d" % k)
        with open(os.path.join(d, "test.labels")) as f:
            for ln in f:
                expected[ln.split(" ", 1)[0]] += 1
        with open(os.path.join(d, "scan.json"), errors="replace") as f:
            for ln in f:
                ln = ln.strip()
                if not ln.startswith("{"):
                    continue
                try:
                    j = json.loads(ln)
                except ValueError:
                    continue
                path = j.get("file", "")
                cls = os.path.basename(os.path.dirname(path))
                if cls not in msgs:
                    continue
                syms = [e.get("symbol", "") for e in j.get("evidence", [])]
                msgs[cls].append((float(j.get("score", 0)), os.path.realpath(path), syms))
    return msgs, expected


def pc(k, n):
    return "%4d/%d (%5.1f%%)" % (k, n, 100.0 * k / n if n else 0.0)


def rules(ms):
    c = collections.Counter()
    for _, _, syms in ms:
        c.update(set(syms))
    return ", ".join("%s %d" % kv for kv in c.most_common(TOP)) or "-"


def main():
    work, folds, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    thr = float(sys.argv[4])
    save = sys.argv[5] if len(sys.argv) > 5 else ""
    msgs, expected = load(work, first, folds)
    spam, ham = msgs["spam"], msgs["ham"]
    ns, nh = expected["spam"], expected["ham"]
    print("== spam-cv: %d folds of spam-1 + easy-ham-1 (%s), scored %d spam, %d ham, whole pipeline"
          % (folds, "each learnt from the folds before it" if first else
             "each learnt from the others", ns, nh))
    if len(spam) != ns or len(ham) != nh:
        print("  NOT SCORED: %d spam, %d ham (counted as missed / not flagged)"
              % (ns - len(spam), nh - len(ham)))
    for t in sorted(set((thr,) + OTHERS)):
        caught = sum(s >= t for s, _, _ in spam)
        fp = sum(s >= t for s, _, _ in ham)
        print("  threshold %-4g spam caught %s   ham flagged %s%s"
              % (t, pc(caught, ns), pc(fp, nh), "   <==" if t == thr else ""))
    print("  near it: spam in [3,5) %d, ham in [3,5) %d; spam < 3 %d, ham >= 5 %d"
          % (sum(3 <= s < 5 for s, _, _ in spam), sum(3 <= s < 5 for s, _, _ in ham),
             sum(s < 3 for s, _, _ in spam), sum(s >= 5 for s, _, _ in ham)))
    missed = [m for m in spam if m[0] < thr]
    fps = [m for m in ham if m[0] >= thr]
    print("  rules on missed spam (%d): %s" % (len(missed), rules(missed)))
    print("  rules on false-positive ham (%d): %s" % (len(fps), rules(fps)))
    if save:
        with open(save, "w") as f:
            for cls in ("spam", "ham"):
                for s, p, syms in sorted(msgs[cls], key=lambda m: m[1]):
                    f.write("%s %.3f %s %s\n" % (cls, s, p, ",".join(syms)))


if __name__ == "__main__":
    main()
