#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# A bounded UDP load for end-to-end tests: RATE datagrams a second to ADDR:PORT for SECONDS, each
# from a new socket (so a new source port: every datagram is a new flow, spread over the backends
# by the flow hash), paced on the monotonic clock. Replies are not read. At the end it writes
# {"sent": N, "seconds": S} to OUT, S the time the sending took.
#
# Usage: udp_load.py ADDR PORT RATE SECONDS OUT [--stop FILE]   (stops early once FILE exists)
import argparse
import json
import os
import socket
import time

RATE_MAX = 20000  # datagrams a second: a test load, not a flood
SECONDS_MAX = 120  # the longest load a test may ask for
PAYLOAD = b"top-e2e-load-" + b"x" * 51  # 64 bytes


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("rate", type=int)
    p.add_argument("seconds", type=float)
    p.add_argument("out")
    p.add_argument("--stop")
    a = p.parse_args()
    if not 0 < a.rate <= RATE_MAX or not 0 < a.seconds <= SECONDS_MAX:
        p.error("rate 1..%d, seconds up to %d" % (RATE_MAX, SECONDS_MAX))
    fam = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    total = int(a.rate * a.seconds)
    start = time.monotonic()
    sent = 0
    for i in range(total):
        due = start + i / a.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        if i % a.rate == 0 and a.stop and os.path.exists(a.stop):
            break
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(PAYLOAD, (a.addr, a.port))
                sent += 1
            except OSError:
                pass
    with open(a.out + ".tmp", "w") as f:
        json.dump({"sent": sent, "seconds": time.monotonic() - start}, f)
    os.rename(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
