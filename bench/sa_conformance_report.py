"""sa_conformance_report.py SA_OUT MOAT_JSON: compare SpamAssassin's rules
per message (bench/sa_conformance.pl) with moat's (`moat scan --json`):
messages whose reported rules are the same, scores within 0.01, verdicts
at 5 points per group, and the rules the two disagree on most."""
import collections
import json
import sys


def main():
    sa = {}
    with open(sys.argv[1]) as f:
        for line in f:
            path, score, *rest = line.rstrip("\n").split(" ")
            sa[path] = (float(score), set(r for r in (rest[0].split(",") if rest else []) if r))
    moat = {}
    with open(sys.argv[2]) as f:
        for line in f:
            m = json.loads(line)
            moat[m["file"]] = (m.get("score", 0),
                               {e["symbol"] for e in m.get("evidence", []) if e.get("filter") == "spam"})
    only_sa, only_moat, both = collections.Counter(), collections.Counter(), collections.Counter()
    same = close = 0
    groups = collections.defaultdict(lambda: [0, 0, 0])
    for path, (s_score, s_rules) in sa.items():
        if path not in moat:
            continue
        m_score, m_rules = moat[path]
        same += s_rules == m_rules
        close += abs(s_score - m_score) < 0.01
        only_sa.update(s_rules - m_rules)
        only_moat.update(m_rules - s_rules)
        both.update(s_rules & m_rules)
        g = groups[path.split("/")[-2]]
        g[0] += 1
        g[1] += s_score >= 5
        g[2] += m_score >= 5
    n = sum(g[0] for g in groups.values())
    print("messages %d: same rules %d (%.1f%%), score within 0.01 %d (%.1f%%)"
          % (n, same, 100.0 * same / max(n, 1), close, 100.0 * close / max(n, 1)))
    for name, (cnt, s5, m5) in sorted(groups.items()):
        print("  %-12s %4d messages, >= 5 points: SpamAssassin %d, moat %d" % (name, cnt, s5, m5))
    print("rules the two disagree on (messages):")
    for r in sorted(set(only_sa) | set(only_moat), key=lambda r: -(only_sa[r] + only_moat[r]))[:30]:
        print("  %-32s both %4d  SpamAssassin only %4d  moat only %4d" % (r, both[r], only_sa[r], only_moat[r]))


main()
