#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# Long-lived HTTP/1.1 keep-alive clients for the e2e tests (lib.sh clients_start): each connection
# to the VIP sends a GET every PERIOD seconds and checks the answer (the backend's name, from
# servers.py).
#
# Usage: control_clients.py VIP PORT --open N --keep K [--avoid NAME] --ready FILE --stop FILE
#                           --out FILE [--period S] [--max-seconds S]
#
# Opens N connections, closes those whose first answer came from --avoid, keeps K of the rest
# (fewer if not enough), writes "ready K" to --ready, then runs until --stop exists (or
# --max-seconds pass) and writes a JSON summary to --out: per connection its backend, requests,
# errors (reset, timeout, bad answer), whether the backend changed, and the longest gap between
# two answers. Every connection is closed normally (FIN) at the end.
import argparse
import json
import os
import socket
import threading
import time

CONNECT_TIMEOUT = 3.0  # seconds
ANSWER_TIMEOUT = 2.0  # seconds; a longer wait counts as an error (a stall)
ANSWER_MAX = 4096  # bytes of one HTTP answer


def http_get(sock, buf):
    """One GET on a keep-alive connection; returns (body, rest of the buffer)."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(ANSWER_MAX)
        if not chunk:
            raise ConnectionError("closed by peer")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError("status: %r" % head[:40])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(buf) < length:
        chunk = sock.recv(ANSWER_MAX)
        if not chunk:
            raise ConnectionError("closed by peer mid-body")
        buf += chunk
    return buf[:length].decode().strip(), buf[length:]


class Conn:
    def __init__(self, vip, port):
        self.sock = socket.create_connection((vip, port), timeout=CONNECT_TIMEOUT)
        self.sock.settimeout(ANSWER_TIMEOUT)
        self.buf = b""
        self.sport = self.sock.getsockname()[1]
        self.backend, self.buf = http_get(self.sock, self.buf)
        self.requests = 1
        self.errors = []
        self.changed = False
        self.max_gap = 0.0

    def run(self, period, stop, deadline):
        last = time.monotonic()
        while not os.path.exists(stop) and time.monotonic() < deadline:
            time.sleep(period)
            try:
                name, self.buf = http_get(self.sock, self.buf)
            except (OSError, ValueError) as e:
                self.errors.append("%.3f %s" % (time.time(), e))
                return
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.requests += 1
            if name != self.backend:
                self.changed = True
                self.errors.append("backend changed %s -> %s" % (self.backend, name))
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.recv(1)
        except OSError as e:
            self.errors.append("close: %s" % e)
        self.sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vip")
    ap.add_argument("port", type=int)
    ap.add_argument("--open", type=int, required=True)
    ap.add_argument("--keep", type=int, required=True)
    ap.add_argument("--avoid", default="")
    ap.add_argument("--ready", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--max-seconds", type=float, default=240.0)
    a = ap.parse_args()

    conns = []
    open_errors = []
    for _ in range(a.open):
        try:
            c = Conn(a.vip, a.port)
        except (OSError, ValueError) as e:
            open_errors.append(str(e))
            continue
        if c.backend == a.avoid or len(conns) >= a.keep:
            c.sock.close()
            continue
        conns.append(c)
    with open(a.ready, "w") as f:
        f.write("ready %d\n" % len(conns))
    deadline = time.monotonic() + a.max_seconds
    threads = [threading.Thread(target=c.run, args=(a.period, a.stop, deadline)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {
        "open_errors": open_errors,
        "conns": [
            {
                "sport": c.sport,
                "backend": c.backend,
                "requests": c.requests,
                "errors": c.errors,
                "changed": c.changed,
                "max_gap_ms": round(c.max_gap * 1000),
            }
            for c in conns
        ],
    }
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
