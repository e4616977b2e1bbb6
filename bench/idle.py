#!/usr/bin/env python3
"""Open N SMTP sessions to HOST:PORT, read each greeting, then sit idle.

usage: idle.py N HOST:PORT READYFILE

Writes "ok N" (or "error ...") to READYFILE once every session is open and
greeted, then sleeps until killed.
"""

import resource
import socket
import sys
import time


def main():
    n = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    port = int(port)
    ready = sys.argv[3]
    want = n + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError) as e:
            with open(ready, "w") as f:
                f.write("error cannot raise RLIMIT_NOFILE to %d: %s\n" % (want, e))
            return 1
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection((host, port), 10)
            buf = b""
            while b"\r\n" not in buf:
                d = s.recv(4096)
                if not d:
                    raise EOFError("session %d closed before the greeting" % i)
                buf += d
            if not buf.startswith(b"220"):
                raise RuntimeError("session %d greeting %r" % (i, buf[:80]))
            socks.append(s)
    except Exception as e:
        with open(ready, "w") as f:
            f.write("error after %d sessions: %s\n" % (len(socks), e))
        time.sleep(3600)
        return 1
    with open(ready, "w") as f:
        f.write("ok %d\n" % len(socks))
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
