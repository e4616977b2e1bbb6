"""The spf filter through moatd, with moat's resolver asking a real
dnsmasq on a loopback port (dns_forwarders). Clients connect from
127.0.0.2-127.0.0.4 (all loopback, check_loopback = yes) so that records
can permit one address and not another.

Checked: pass/fail/softfail/neutral/none/permerror/temperror with their
evidence, Received-SPF (RFC 7208 §9.1) and Authentication-Results
(RFC 8601) in the delivered message; a rule refusing SPF_FAIL at MAIL with
the policy's reply (before DATA); a DNS timeout answered 451 4.4.3 by
default and let through with temperror = continue; the HELO identity
beside MAIL FROM, remembered for the session's next transaction; the null
sender checked as postmaster@HELO; an evaluation over several rounds of
DNS (include, mx); a slow DNS answer does not slow another session; a
client that leaves while its check waits; option errors from moatd -t.
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Moatd, Sink, Client, Dnsmasq, SilentDns,  # noqa: E402
                      dnsmasq_usable, moatd_check)

t = TAP()

RECORDS = [
    "local=/example.test/",
    'txt-record=pass.example.test,"v=spf1 ip4:127.0.0.2 -all"',
    'txt-record=soft.example.test,"v=spf1 ip4:127.0.0.2 ~all"',
    'txt-record=neutral.example.test,"v=spf1 ?all"',
    'txt-record=perm.example.test,"v=spf1 ip4:127.0.0.2 bogus -all"',
    'txt-record=inc.example.test,"v=spf1 include:pass.example.test mx -all"',
    "mx-host=inc.example.test,mx1.inc.example.test,10",
    "mx-host=inc.example.test,mx2.inc.example.test,20",
    "host-record=mx1.inc.example.test,127.0.0.9",
    "host-record=mx2.inc.example.test,127.0.0.4",
    "host-record=nospf.example.test,192.0.2.1",
    'txt-record=helo.example.test,"v=spf1 ip4:127.0.0.2 -all"',
    'txt-record=badhelo.example.test,"v=spf1 -all"',
]


def conf(dns, extra_filter="", extra=""):
    return ('dns_forwarders = { "%s" }\ndns_timeout = 1s\n'
            'filter "spf" { check_loopback = "yes" receiver = "mx.moat.test" %s }\n'
            'rule "SPF_FAIL" { action = reject reply = "550 5.7.23 SPF check failed" }\n'
            '%s' % (dns.forwarder(), extra_filter, extra))


def mail(port, sender, source="127.0.0.2", helo="client.example.test", body=None):
    """One transaction; returns (replies, client)."""
    c = Client(port, source=source)
    out = [c.cmd("EHLO " + helo)]
    out.append(c.cmd("MAIL FROM:<%s>" % sender))
    if out[-1][0] == 250:
        out.append(c.cmd("RCPT TO:<rcpt@dest.test>"))
        out.append(c.cmd("DATA"))
        if out[-1][0] == 354:
            c.send((body or "Subject: spf\r\nFrom: <%s>\r\n\r\nhello\r\n" % sender) + ".\r\n")
            out.append(c.reply())
    c.cmd("QUIT")
    c.close()
    return out


def tx_line(m, sender):
    for line in m.log().splitlines():
        if "event=tx" in line and sender in line:
            return line
    return ""


def header(msg, name):
    m = re.search(r"^%s: (.*(?:\r?\n[ \t].*)*)" % re.escape(name), msg, re.M | re.I)
    return re.sub(r"\r?\n[ \t]+", " ", m.group(1)) if m else None


def last_message(sink, n):
    msgs = sink.messages(count=n)
    return msgs[-1] if len(msgs) >= n else ""


def results(dns, silent):
    sink = Sink()
    m = Moatd(sink.port, conf(dns))
    delivered = 0
    try:
        # pass: delivered with both headers
        r = mail(m.port, "alice@pass.example.test")
        delivered += 1
        t.eq(r[-1][0], 250, "pass: delivered")
        msg = last_message(sink, delivered)
        rs = header(msg, "Received-SPF") or ""
        t.like(rs, r"^pass \(mx\.moat\.test: domain of alice@pass\.example\.test designates "
               r"127\.0\.0\.2 as permitted sender\) client-ip=127\.0\.0\.2; "
               r"envelope-from=\"alice@pass\.example\.test\"; helo=client\.example\.test; "
               r"receiver=mx\.moat\.test; identity=mailfrom; mechanism=\"ip4:127\.0\.0\.2\"$",
               "pass: Received-SPF (RFC 7208 9.1)")
        t.like(header(msg, "Authentication-Results") or "",
               r"spf=pass smtp\.mailfrom=alice@pass\.example\.test",
               "pass: Authentication-Results spf= clause")
        t.like(tx_line(m, "alice@pass.example.test"), r"SPF_PASS\(spf:-0\.10\)",
               "pass: evidence SPF_PASS with its score")

        # fail: refused at MAIL by the rule, before DATA
        r = mail(m.port, "bob@pass.example.test", source="127.0.0.3")
        t.eq(r[1][0], 550, "fail: MAIL refused by rule SPF_FAIL")
        t.like(r[1][1], r"5\.7\.23", "fail: the rule's reply")
        t.ok(m.wait_log(r"event=policy .*stage=mail .*action=reject") is not None,
             "fail: decided at the MAIL stage")

        # softfail, neutral, none, permerror: evidence and headers, delivered
        for sender, res, src in (("carol@soft.example.test", "softfail", "127.0.0.3"),
                                 ("dan@neutral.example.test", "neutral", "127.0.0.3"),
                                 ("erin@nospf.example.test", "none", "127.0.0.3"),
                                 ("frank@perm.example.test", "permerror", "127.0.0.2")):
            r = mail(m.port, sender, source=src)
            delivered += 1
            t.eq(r[-1][0], 250, "%s: delivered" % res)
            msg = last_message(sink, delivered)
            t.like(header(msg, "Received-SPF") or "", r"^%s " % res, "%s: Received-SPF" % res)
            t.like(header(msg, "Authentication-Results") or "", r"spf=%s " % res,
                   "%s: Authentication-Results" % res)
            t.like(tx_line(m, sender), r"SPF_%s\(" % res.upper(), "%s: evidence" % res)
        msg = last_message(sink, delivered)
        t.like(header(msg, "Received-SPF") or "", r'problem="perm\.example\.test: unknown '
               r'mechanism \\"bogus\\""', "permerror: the problem in Received-SPF")

        # several rounds of DNS: include, then mx with two hosts
        r = mail(m.port, "gina@inc.example.test", source="127.0.0.4")
        delivered += 1
        t.eq(r[-1][0], 250, "include+mx: delivered")
        msg = last_message(sink, delivered)
        t.like(header(msg, "Received-SPF") or "", r"^pass .*mechanism=mx$",
               "include+mx: pass by the mx mechanism after several rounds")

        # HELO identity beside MAIL FROM, once per session
        c = Client(m.port, source="127.0.0.2")
        c.cmd("EHLO helo.example.test")
        for i in range(2):
            c.cmd("MAIL FROM:<hal%d@soft.example.test>" % i)
            c.cmd("RCPT TO:<rcpt@dest.test>")
            c.cmd("DATA")
            c.send("Subject: helo %d\r\n\r\nx\r\n.\r\n" % i)
            c.reply()
            delivered += 1
        c.cmd("QUIT")
        c.close()
        for i in range(2):
            t.like(tx_line(m, "hal%d@soft.example.test" % i),
                   r"SPF_PASS\(spf:-0\.10\).*SPF_HELO_PASS\(spf:0\.00\)|"
                   r"SPF_HELO_PASS\(spf:0\.00\).*SPF_PASS",
                   "HELO identity checked beside MAIL FROM (transaction %d)" % (i + 1))

        # null sender: postmaster@HELO, identity helo
        c = Client(m.port, source="127.0.0.2")
        c.cmd("EHLO helo.example.test")
        c.cmd("MAIL FROM:<>")
        c.cmd("RCPT TO:<rcpt@dest.test>")
        c.cmd("DATA")
        c.send("Subject: bounce\r\n\r\nx\r\n.\r\n")
        code = c.reply()[0]
        c.close()
        delivered += 1
        t.eq(code, 250, "null sender: delivered")
        msg = last_message(sink, delivered)
        t.like(header(msg, "Received-SPF") or "", r"^pass .*envelope-from=\"\"; "
               r"helo=helo\.example\.test; .*identity=helo",
               "null sender: identity=helo in Received-SPF")
        t.like(header(msg, "Authentication-Results") or "",
               r"spf=pass smtp\.helo=helo\.example\.test",
               "null sender: smtp.helo in Authentication-Results")

        # a HELO name whose SPF fails: evidence only (no rule on it)
        r = mail(m.port, "ida@pass.example.test", source="127.0.0.2",
                 helo="badhelo.example.test")
        delivered += 1
        t.eq(r[-1][0], 250, "HELO fail alone: delivered (no rule)")
        t.like(tx_line(m, "ida@pass.example.test"), r"SPF_HELO_FAIL\(spf:0\.50\)",
               "HELO fail: evidence SPF_HELO_FAIL")

        # temperror: 451 4.4.3 by default, and another session is not slowed
        slow = {}

        def slow_session():
            t0 = time.time()
            slow["r"] = mail(m.port, "jo@slow.example.test")
            slow["t"] = time.time() - t0
        th = threading.Thread(target=slow_session)
        th.start()
        time.sleep(0.2)
        t0 = time.time()
        r = mail(m.port, "kim@pass.example.test")
        fast = time.time() - t0
        delivered += 1
        th.join(20)
        t.eq(r[-1][0], 250, "a session beside a slow DNS answer is delivered")
        t.ok(fast < 0.8, "... without waiting for the slow answer (%.2fs)" % fast)
        t.eq(slow.get("r", [None, (None, "")])[1][0], 451, "DNS timeout: MAIL gets 451")
        t.like(slow.get("r", [None, (None, "")])[1][1], r"^4\.4\.3 ", "... 4.4.3 (RFC 7208 8.6)")
        t.ok(0.9 < slow.get("t", 0) < 10, "... after dns_timeout (%.2fs)" % slow.get("t", 0))

        # a client that leaves while its check waits
        c = Client(m.port, source="127.0.0.2")
        c.cmd("EHLO client.example.test")
        c.send("MAIL FROM:<lee@slow.example.test>\r\n")
        time.sleep(0.1)
        c.close()
        time.sleep(1.5)
        r = mail(m.port, "max@pass.example.test")
        delivered += 1
        t.eq(r[-1][0], 250, "after a client left mid-check, the next is served")
        t.ok(m.alive(), "moatd alive")
    finally:
        rc = m.stop()
        t.eq(rc, 0, "moatd exits cleanly (no sanitizer report)")
        sink.stop()

    # temperror = continue: delivered with spf=temperror
    sink = Sink()
    m = Moatd(sink.port, conf(dns, 'temperror = "continue"'))
    try:
        r = mail(m.port, "ned@slow.example.test")
        t.eq(r[-1][0], 250, "temperror = continue: delivered")
        msg = last_message(sink, 1)
        t.like(header(msg, "Received-SPF") or "", r"^temperror .*problem=\"DNS timeout for "
               r"slow\.example\.test\"", "temperror: Received-SPF with the problem")
    finally:
        m.stop()
        sink.stop()


def config_errors(dns):
    for opt, pat in (('helo = "maybe"', r'helo: "maybe" is not yes or no'),
                     ('temperror = "reject"', r'temperror: "reject" is not tempfail or continue'),
                     ('score_fail = "lots"', r'score_fail: "lots" is not a score'),
                     ('colour = "red"', r'unknown option "colour"')):
        rc, out = moatd_check('filter "spf" { %s }\n' % opt)
        t.ok(rc != 0 and re.search(pat, out), "moatd -t refuses %s" % opt, out)


def main():
    if not dnsmasq_usable():
        t.skip("spf filter against dnsmasq", "dnsmasq not installed (dnsmasq-base)")
        t.done()
    silent = SilentDns()
    dns = Dnsmasq(RECORDS + ["server=/slow.example.test/127.0.0.1#%d" % silent.port,
                             "log-queries"])
    try:
        t.section(lambda: results(dns, silent))
        t.section(lambda: config_errors(dns))
    finally:
        dns.stop()
    t.done()


main()
