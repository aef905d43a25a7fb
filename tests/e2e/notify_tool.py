#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# systemd's side of the notification protocol, for tests/e2e/test_systemd.sh, and maglevd's test
# hook over its control socket. Times are CLOCK_MONOTONIC seconds (time.monotonic), so the lines
# of both commands compare.
#
#   notify_tool.py listen SOCKET OUT --stop FILE [--max-seconds S]
#       binds the AF_UNIX datagram socket SOCKET (what NOTIFY_SOCKET names) and appends one line
#       per datagram to OUT: "TIME MESSAGE", the message's lines joined with "|"; runs until FILE
#       exists or S seconds (default 300) have passed.
#   notify_tool.py stall CTLSOCK WORKER SECONDS
#       sends {"cmd":"test-stall",...} to maglevd's control socket, prints "TIME ANSWER" (TIME
#       taken just before sending); exit 0 if the answer is ok.
#   notify_tool.py udp ADDR PORT SECONDS [PPS]
#       sends small UDP datagrams to ADDR:PORT at PPS (default 50) for SECONDS.
import json
import os
import socket
import sys
import time

RECV_MAX = 4096  # bytes of one notification datagram
POLL_S = 0.2  # the listener looks for the stop file this often
CTL_TIMEOUT_S = 5.0


def listen(path, out, stop, max_seconds):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(POLL_S)
    deadline = time.monotonic() + max_seconds
    with open(out, "a", buffering=1) as f:
        while not os.path.exists(stop) and time.monotonic() < deadline:
            try:
                msg = s.recv(RECV_MAX)
            except socket.timeout:
                continue
            f.write("%.3f %s\n" % (time.monotonic(), msg.decode(errors="replace").replace("\n", "|")))
    s.close()
    os.unlink(path)


def stall(ctlsock, worker, seconds):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(CTL_TIMEOUT_S)
    s.connect(ctlsock)
    req = json.dumps({"cmd": "test-stall", "worker": worker, "seconds": seconds}) + "\n"
    t = time.monotonic()
    s.sendall(req.encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(RECV_MAX)
        if not chunk:
            break
        buf += chunk
    s.close()
    print("%.3f %s" % (t, buf.decode().strip()))
    return 0 if json.loads(buf).get("ok") else 1


def udp(addr, port, seconds, pps):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        s.sendto(b"notify-e2e %d" % n, (addr, port))
        n += 1
        time.sleep(1.0 / pps)
    print(n)


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "listen" and a[3] == "--stop":
        max_s = float(a[6]) if len(a) >= 7 and a[5] == "--max-seconds" else 300.0
        listen(a[1], a[2], a[4], max_s)
        return 0
    if len(a) == 4 and a[0] == "stall":
        return stall(a[1], int(a[2]), int(a[3]))
    if len(a) in (4, 5) and a[0] == "udp":
        udp(a[1], int(a[2]), float(a[3]), float(a[4]) if len(a) == 5 else 50.0)
        return 0
    print(__doc__ or "usage: see the comment at the top", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
