#!/usr/bin/env python3
"""bayes_cv_report.py - the summary of bench/bayes-cv: per engine, the
P(spam) distribution of the test spam and ham over all folds and the
errors at a few thresholds.

    bayes_cv_report.py WORKDIR FOLDS ENGINE...

Reads WORKDIR/f<k>/test.labels ("spam|ham PATH") and WORKDIR/f<k>/<engine>
.out ("PATH PROB" or "PATH -"; other lines ignored)."""
import os
import sys


def load(work, folds, engine):
    out = {"spam": [], "ham": []}
    for k in range(folds):
        d = os.path.join(work, "f%d" % k)
        label = {}
        with open(os.path.join(d, "test.labels")) as f:
            for ln in f:
                c, p = ln.rstrip("\n").split(" ", 1)
                label[p] = c
        seen = set()
        with open(os.path.join(d, engine + ".out")) as f:
            for ln in f:
                p, _, v = ln.rstrip("\n").rpartition(" ")
                if p.endswith(": message 1"):  # an mbox of one message
                    p = p[:-len(": message 1")]
                if p not in label or p in seen:
                    continue
                seen.add(p)
                out[label[p]].append(None if v == "-" else float(v))
        for p, c in label.items():
            if p not in seen:
                out[c].append(None)
    return out


def dist(v):
    n = len(v)
    nv = [x for x in v if x is not None]

    def pc(k):
        return "%4d (%5.1f%%)" % (k, 100.0 * k / n if n else 0)
    return ("n=%d  >0.99 %s  >0.9 %s  unsure[0.1,0.9] %s  <0.1 %s  "
            "<0.01 %s  no-vote %d" % (
                n, pc(sum(x > 0.99 for x in nv)),
                pc(sum(x > 0.9 for x in nv)),
                pc(sum(0.1 <= x <= 0.9 for x in nv)),
                pc(sum(x < 0.1 for x in nv)),
                pc(sum(x < 0.01 for x in nv)), n - len(nv)))


def main():
    work, folds = sys.argv[1], int(sys.argv[2])
    for e in sys.argv[3:]:
        r = load(work, folds, e)
        s = [0.5 if x is None else x for x in r["spam"]]
        h = [0.5 if x is None else x for x in r["ham"]]
        print("== %s (%d folds)" % (e, folds))
        print("  spam: " + dist(r["spam"]))
        print("  ham:  " + dist(r["ham"]))
        for t in (0.5, 0.9, 0.99):
            fn = sum(x <= t for x in s)
            fp = sum(x > t for x in h)
            print("  threshold %.2f: spam missed %d (%.1f%%), ham as spam "
                  "%d (%.2f%%)" % (t, fn, 100.0 * fn / max(len(s), 1), fp,
                                   100.0 * fp / max(len(h), 1)))


if __name__ == "__main__":
    main()
