#!/usr/bin/env python3
"""Time complete SMTP transactions (connect .. QUIT) against two servers,
alternating between them, and print the medians per step as JSON.

usage: latency.py RUNS NAME=HOST:PORT [NAME=HOST:PORT ...]
"""

import json
import socket
import statistics
import sys
import time

STEPS = ["connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "body+dot", "QUIT"]
BODY = (b"From: <bench@example.org>\r\nTo: <sink@example.test>\r\n"
        b"Subject: latency\r\n\r\n" + (b"x" * 70 + b"\r\n") * 14)   # ~1 KB


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), 10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("connection closed")
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3])


def transaction(host, port):
    t = [time.perf_counter()]
    c = Conn(host, port)
    codes = [c.reply()]
    t.append(time.perf_counter())
    for cmd, body in ((b"EHLO bench.example.org", None),
                      (b"MAIL FROM:<bench@example.org>", None),
                      (b"RCPT TO:<sink@example.test>", None),
                      (b"DATA", None),
                      (None, BODY + b".\r\n"),
                      (b"QUIT", None)):
        c.s.sendall(cmd + b"\r\n" if cmd else body)
        codes.append(c.reply())
        t.append(time.perf_counter())
    c.s.close()
    if codes != [220, 250, 250, 250, 354, 250, 221]:
        raise RuntimeError("unexpected replies %r" % codes)
    return [(t[i + 1] - t[i]) * 1e3 for i in range(len(STEPS))]


def main():
    runs = int(sys.argv[1])
    targets = []
    for a in sys.argv[2:]:
        name, addr = a.split("=", 1)
        host, port = addr.rsplit(":", 1)
        targets.append((name, host, int(port)))
    samples = {name: [] for name, _, _ in targets}
    for name, host, port in targets:          # warm-up
        for _ in range(10):
            transaction(host, port)
    for _ in range(runs):
        for name, host, port in targets:
            samples[name].append(transaction(host, port))
    out = {}
    for name, rows in samples.items():
        out[name] = {
            "runs": len(rows),
            "total_ms": statistics.median(sum(r) for r in rows),
            "total_p90_ms": sorted(sum(r) for r in rows)[int(len(rows) * 0.9)],
            "steps_ms": {s: statistics.median(r[i] for r in rows)
                         for i, s in enumerate(STEPS)},
        }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
