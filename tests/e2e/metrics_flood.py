#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# Abusive clients of the metrics endpoint and a scraper that must still be answered
# (test_prometheus.sh, case flood).
#
# Usage: metrics_flood.py HOST PORT --drip N --idle M --from ADDR[,ADDR...] --scrape-from ADDR
#                         [--seconds S] [--scrape-every S] [--scrape-timeout S]
#
# Opens N "drip" connections (a request line, then one header byte every DRIP_EVERY seconds,
# never the end of the headers) and M idle ones (connected, nothing sent), spread over the --from
# addresses; one the server closes is opened again (a real slowloris does that), at most
# RECONNECTS_MAX times in all. Meanwhile, every --scrape-every seconds, a GET /metrics from
# --scrape-from with --scrape-timeout for the whole answer. Runs for --seconds, then prints one
# JSON line: scrapes tried and answered (200 with the whole body), the slowest answer, how many
# abusive connections were open at the end and how often the server closed one.
import argparse
import json
import selectors
import socket
import time

DRIP_EVERY = 0.5  # seconds between two header bytes of a drip client
RECONNECTS_MAX = 500000  # abusive connections opened again, in all (bounds the loop)
ANSWER_MAX = 1 << 22  # bytes of a scrape answer read at most


class Abuser:
    def __init__(self, src, host, port, drip):
        self.src, self.host, self.port, self.drip = src, host, port, drip
        self.sock = None
        self.next_byte = 0.0

    def open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.src, 0))
        s.setblocking(False)
        # Not waited for: a connection still in the server's backlog just sends later.
        s.connect_ex((self.host, self.port))
        self.sock = s
        self.started = False
        self.next_byte = time.monotonic()


def scrape(src, host, port, timeout):
    """One GET /metrics; returns the seconds it took, or None if it failed."""
    t0 = time.monotonic()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        buf = b""
        while len(buf) < ANSWER_MAX:
            s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
    except OSError:
        return None
    if not buf.startswith(b"HTTP/1.") or b" 200 " not in buf[:16]:
        return None
    if b"maglevd_uptime_seconds" not in buf:  # the whole exposition, not a cut one
        return None
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--drip", type=int, default=200)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--from", dest="srcs", required=True)
    ap.add_argument("--scrape-from", required=True)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--scrape-every", type=float, default=0.5)
    ap.add_argument("--scrape-timeout", type=float, default=2.0)
    a = ap.parse_args()
    srcs = a.srcs.split(",")
    abusers = [Abuser(srcs[i % len(srcs)], a.host, a.port, i < a.drip)
               for i in range(a.drip + a.idle)]
    sel = selectors.DefaultSelector()
    reconnects = closed = open_errors = 0
    tried = answered = 0
    slowest = 0.0
    start = time.monotonic()
    end = start + a.seconds
    capped_at = None  # when RECONNECTS_MAX was reached: the attack ended there
    next_scrape = time.monotonic() + 1.0  # let the abusers settle in first

    def reopen(ab):
        nonlocal reconnects, open_errors
        nonlocal capped_at
        if reconnects >= RECONNECTS_MAX:
            ab.sock = None
            capped_at = capped_at or time.monotonic()
            return
        reconnects += 1
        try:
            ab.open()
            sel.register(ab.sock, selectors.EVENT_READ, ab)
        except OSError:
            open_errors += 1
            ab.sock = None

    for ab in abusers:
        try:
            ab.open()
            sel.register(ab.sock, selectors.EVENT_READ, ab)
        except OSError:
            open_errors += 1
            ab.sock = None
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_scrape:
            tried += 1
            took = scrape(a.scrape_from, a.host, a.port, a.scrape_timeout)
            if took is not None:
                answered += 1
                slowest = max(slowest, took)
            next_scrape = time.monotonic() + a.scrape_every
            continue
        for key, _ in sel.select(timeout=min(0.05, max(0.0, next_scrape - now))):
            ab = key.data
            try:
                data = ab.sock.recv(4096)
            except OSError:
                data = b""
            if not data:  # the server closed it: open it again
                closed += 1
                sel.unregister(ab.sock)
                ab.sock.close()
                reopen(ab)
        now = time.monotonic()
        for ab in abusers:
            if ab.sock is None:
                reopen(ab)
            elif ab.drip and now >= ab.next_byte:
                ab.next_byte = now + DRIP_EVERY
                try:
                    ab.sock.send(b"X" if ab.started else
                                 b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    ab.started = True
                except OSError:
                    pass  # not connected yet (or closed: the selector says so)
    still = sum(1 for ab in abusers if ab.sock is not None)
    print(json.dumps({"tried": tried, "answered": answered, "slowest_s": round(slowest, 3),
                      "abusers_open": still, "server_closed": closed,
                      "reconnects": reconnects, "open_errors": open_errors,
                      "attack_s": round((capped_at or end) - start, 1)}))


if __name__ == "__main__":
    main()
