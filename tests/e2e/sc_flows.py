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
    s = json.load(open(summary_path))
    moved = None
    if moved_path:
        moved = {int(x) for x in open(moved_path).read().split()}
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
    if len(sys.argv) < 4 or sys.argv[1] not in ("tracked", "report"):
        sys.exit("usage: sc_flows.py tracked|report SOCKET CLIENT ...")
    ctl = Ctl(sys.argv[2])
    if sys.argv[1] == "tracked":
        tracked(ctl, sys.argv[3], [int(p) for p in sys.argv[4:]])
    else:
        report(ctl, sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else "")


if __name__ == "__main__":
    main()
