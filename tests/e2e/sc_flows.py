#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# Which long-lived connections a maglevd change put at risk, for tests/e2e/test_second_chance.sh.
# Asks a maglevd over its control socket (the explain request, docs/control.md) about the web
# VIP's flows from one client address.
#
# Usage: sc_flows.py tracked SOCKET CLIENT PORT...
#            prints the PORTs whose flow the maglevd at SOCKET tracks (one a line)
#        sc_flows.py report SOCKET CLIENT SUMMARY.json [MOVED_FILE]
#            over the connections of a control_clients.py summary, prints one line
#            "conns broken exposed broken_unexposed max_gap_ms backends open_errors": broken =
#            an error or an answer from another backend; exposed = its flow is in MOVED_FILE
#            (ports, one a line: the flows that came to this maglevd without an entry; every
#            flow if no file) and this maglevd's table gives it another backend than the one it
#            has, so only second chance keeps it; each broken connection is listed on stderr.
import argparse
import json
import socket
import sys

VIP = "web"
ANSWER_MAX = 1 << 20  # bytes of one control-socket answer


class Ctl:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.f = self.sock.makefile("rw")

    def explain(self, client, port):
        """The explain result for the web flow from client:port (raises on an error answer)."""
        req = {"cmd": "explain", "vip": VIP, "src": client, "src_port": port}
        self.f.write(json.dumps(req) + "\n")
        self.f.flush()
        line = self.f.readline(ANSWER_MAX)
        ans = json.loads(line)
        if not ans.get("ok"):
            raise RuntimeError("explain %s:%d: %s" % (client, port, ans.get("error")))
        return ans["result"]


def tracked(ctl, client, ports):
    for p in ports:
        if ctl.explain(client, p)["tracked"]:
            print(p)


def backend_names():
    """Backend address -> name (be1 ...) as servers.py answers: 198.18.1.1N and 2001:db8:1::1N."""
    names = {}
    for n in range(1, 10):
        names["198.18.1.1%d" % n] = "be%d" % n
        names["2001:db8:1::1%d" % n] = "be%d" % n
    return names


def report(ctl, client, summary_path, moved_path):
    with open(summary_path) as f:
        s = json.load(f)
    moved = None
    if moved_path:
        with open(moved_path) as f:
            moved = {int(x) for x in f.read().split()}
    names = backend_names()
    broken = exposed = broken_unexposed = 0
    for c in s["conns"]:
        owner = names.get(ctl.explain(client, c["sport"])["table_backend"], "?")
        risk = (moved is None or c["sport"] in moved) and owner != c["backend"]
        bad = bool(c["errors"]) or c["changed"]
        exposed += risk
        broken += bad
        broken_unexposed += bad and not risk
        for e in c["errors"]:
            print(
                "  conn %d (%s, table now %s%s): %s"
                % (c["sport"], c["backend"], owner, ", exposed" if risk else "", e),
                file=sys.stderr,
            )
    for e in s["open_errors"]:
        print("  open: %s" % e, file=sys.stderr)
    gap = max([c["max_gap_ms"] for c in s["conns"]] or [0])
    backends = ",".join(sorted({c["backend"] for c in s["conns"]})) or "-"
    print(len(s["conns"]), broken, exposed, broken_unexposed, gap, backends, len(s["open_errors"]))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tracked")
    t.add_argument("socket")
    t.add_argument("client")
    t.add_argument("ports", type=int, nargs="*")
    r = sub.add_parser("report")
    r.add_argument("socket")
    r.add_argument("client")
    r.add_argument("summary")
    r.add_argument("moved", nargs="?", default="")
    a = ap.parse_args()
    ctl = Ctl(a.socket)
    if a.cmd == "tracked":
        tracked(ctl, a.client, a.ports)
    else:
        report(ctl, a.client, a.summary, a.moved)


if __name__ == "__main__":
    main()
