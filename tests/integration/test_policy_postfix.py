"""The policy engine with real MTAs on both sides, and reload under load.

  Postfix "sender" (relayhost = moatd) ──▶ moatd (two policy groups) ──▶ Postfix "mx"
  smtp-source ──▶ moatd (SIGHUP every 0.1 s) ──▶ smtp-sink

One message to recipients of two policy groups: moat answers 452 4.5.3 for
the second group's recipient, the sending Postfix keeps that recipient and
delivers it in a transaction of its own, each copy carrying its own group's
policy (spam headers in one, not in the other). Then reloads while
smtp-source keeps sending: no message fails or is lost, and the sessions
opened after the reload see the new configuration.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moattest import (TAP, Sink, Moatd, Postfix,  # noqa: E402
                      postfix_usable)

why = postfix_usable()
if why:
    print("1..0 # SKIP %s" % why)
    sys.exit(0)

t = TAP()

# ======================================================= 452 splitting
mx = Postfix("mx.example.test", listen=True,
             mailboxes=("bob@example.test", "carol@vip.test"))
rc, out = mx.start()
if not t.ok(rc == 0, "receiving Postfix started", out):
    t.done()

POLICY = '''
filter "test" { header_evidence = yes }
group "default" { add_header_score = 5  reject_score = 100 }
group "vip" { recipients = {"vip.test"}  add_header_score = 50  reject_score = 100 }
'''
m = Moatd(mx.port, conf=POLICY)
t.ok(m.wait_log(r"event=upstream-up"), "moat sees the receiving Postfix", m.log())

snd = Postfix("sender.example.org", listen=False, mailboxes=(),
              main={"relayhost": "[127.0.0.1]:%d" % m.port,
                    "smtp_host_lookup": "native", "smtp_tls_security_level": "none"})
rc, out = snd.start()
if not t.ok(rc == 0, "sending Postfix started (relayhost = moat)", out):
    t.done()

msg = ("From: alice@example.org\n"
       "To: bob@example.test, carol@vip.test\n"
       "Subject: two policies\n"
       "Message-ID: <split@moat.test>\n"
       "X-Moat-Test: SPAMMY=10\n"
       "\n"
       "one message, two policy groups\n").encode()
rc, out = snd.sendmail(msg, "alice@example.org", ["bob@example.test", "carol@vip.test"])
t.eq(rc, 0, "sendmail accepts the message for both recipients")
snd.flush()
lm = m.wait_log(r"event=group-split .*rcpt_group=(\w+) tx_group=(\w+)", timeout=20)
t.ok(lm is not None, "moat split the groups (452 4.5.3 for one recipient)", m.log()[-3000:])
first_group = lm.group(2) if lm else None
t.ok(snd.wait_log(r"to=<(bob@example\.test|carol@vip\.test)>.*status=(deferred|sent).*"
                  r"452 4\.5\.3", timeout=20) or
     snd.wait_log(r"452 4\.5\.3", timeout=1),
     "the sending Postfix saw 452 4.5.3", snd.log()[-3000:])

# Postfix delivers the deferred recipient in a new transaction, at once or
# on its next queue run: ask for that run until both copies are in.
got_bob = got_carol = []
for _ in range(10):
    got_bob = mx.wait_maildir("bob", b"<split@moat.test>", timeout=0)
    got_carol = mx.wait_maildir("carol", b"<split@moat.test>", timeout=0)
    if got_bob and got_carol:
        break
    snd.flush()
    time.sleep(1)
t.eq(len(got_bob), 1, "bob got the message exactly once")
t.eq(len(got_carol), 1, "carol got the message exactly once")
bob = (got_bob[0] if got_bob else b"").decode("latin-1")
carol = (got_carol[0] if got_carol else b"").decode("latin-1")
t.like(bob, r"(?m)^X-Spam-Status: Yes, score=10\.00 required=5\.00",
       "bob's copy (group default) carries the spam headers")
t.ok(not re.search(r"(?m)^X-Spam-Status:", carol), "carol's copy (group vip) does not")
txs = re.findall(r"event=tx .*verdict=accepted.* group=(\w+) .*action=(\w+)", m.log())
t.eq(sorted(txs), [("default", "add_header"), ("vip", "none")],
     "two transactions, one per group, each with its own action")
t.like(snd.mailq(), r"Mail queue is empty", "the sending queue is empty")
t.ok(first_group in ("default", "vip"), "the first recipient fixed the group")
snd.stop()
t.eq(m.stop(), 0, "moatd exits 0")
mx.stop()

# ======================================================= reload under load
sink = Sink()
conf_a = 'list "deny" { type = sender  entries = {"nobody@nowhere.test"}  action = reject }\n'
conf_b = 'list "deny" { type = sender  entries = {"other@nowhere.test"}  action = reject }\n'
m = Moatd(sink.port, conf=conf_a)
base = open(m.conf).read().replace(conf_a, "")
N = 3000
src = subprocess.Popen(["smtp-source", "-s", "10", "-m", str(N), "-l", "2000",
                        "-f", "load@example.org", "-t", "sink@example.test",
                        "127.0.0.1:%d" % m.port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
reloads = 0
while src.poll() is None and reloads < 30:
    time.sleep(0.1)
    with open(m.conf, "w") as f:
        f.write(base + (conf_b if reloads % 2 == 0 else conf_a))
    m.send_signal(signal.SIGHUP)
    reloads += 1
out, _ = src.communicate(timeout=120)
t.ok(reloads >= 3, "at least 3 reloads while smtp-source was sending (%d)" % reloads)
t.ok(src.returncode == 0, "smtp-source: every message accepted during %d reloads" % reloads,
     out.decode("latin-1")[-500:])
# Count the lines (a regex repeated per reload backtracks over the log).
# A SIGHUP that comes while a reload runs is queued, and several queued
# during one reload make one (event=reload-queued merged=yes): each
# SIGHUP is applied or merged into a later reload.
end = time.time() + 10
while (len(re.findall(r"event=reloaded ", m.log())) +
       len(re.findall(r"event=reload-queued merged=yes", m.log())) < reloads and
       time.time() < end):
    time.sleep(0.1)
merged = len(re.findall(r"event=reload-queued merged=yes", m.log()))
t.eq(len(re.findall(r"event=reloaded ", m.log())), reloads - merged,
     "every reload applied (event=reloaded x %d, %d merged)" % (reloads - merged, merged))
acc = len(re.findall(r"event=tx .*verdict=accepted", m.log()))
t.eq(acc, N, "moat accepted all %d messages" % N)
t.eq(sink.count(), N, "the upstream received all %d messages" % N)
t.ok(not re.search(r"event=reload-failed", m.log()), "no reload failed")
t.ok(not re.search(r"verdict=(tempfail|rejected)", m.log()), "no message refused meanwhile")

# a broken configuration is not applied; the old one stays in force
with open(m.conf, "w") as f:
    f.write(base + 'list "deny" { type = sender  entries = {"load@example.org"}  '
            'action = reject }\nlist "bad" { type = client  entries = {"300.1.1.1"} }\n')
m.send_signal(signal.SIGHUP)
t.ok(m.wait_log(r"event=reload-failed", timeout=10), "a broken configuration: reload-failed")
t.like(m.log(), r"event=config-error .*300\.1\.1\.1", "and the log says why")
p = subprocess.run(["smtp-source", "-s", "1", "-m", "3", "-f", "load@example.org",
                    "-t", "sink@example.test", "127.0.0.1:%d" % m.port],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
t.eq(p.returncode, 0, "the previous configuration still accepts load@example.org")
t.ok(m.alive(), "moatd still running")
t.eq(m.stop(), 0, "moatd exits 0")
sink.stop()
t.done()
