#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# Sends TCP SYNs to a VIP as raw Ethernet frames onto a link (scapy, AF_PACKET), to check what
# maglevd refuses to forward. Run in the namespace that owns IFACE; nothing is received.
#
# Usage: frame_probe.py IFACE LB_MAC CLIENT VIP PORT COUNT KIND
#   KIND mac:  COUNT frames each to the broadcast MAC, an IPv4 multicast MAC and another host's
#              MAC (3 x COUNT; counted as pass_not_our_mac / io_xdp_pass_not_our_mac)
#   KIND src:  COUNT frames each to LB_MAC from 127.0.0.1, 224.0.0.1 and 0.0.0.0 (3 x COUNT,
#              drop_bad_source) and COUNT from the VIP itself (drop_source_is_vip)
#   KIND good: COUNT frames from CLIENT to LB_MAC, a control: these are forwarded
import logging
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, TCP, get_if_hwaddr, sendp  # noqa: E402

OTHER_MACS = ("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "02:00:00:00:00:99")
BAD_SOURCES = ("127.0.0.1", "224.0.0.1", "0.0.0.0")
SPORT_BASE = 41000  # source ports SPORT_BASE.., one flow per frame


def main():
    iface, lb_mac, client, vip, port, count, kind = sys.argv[1:8]
    port, count = int(port), int(count)
    me = get_if_hwaddr(iface)
    if kind == "mac":
        pairs = [(mac, client) for mac in OTHER_MACS]
    elif kind == "src":
        pairs = [(lb_mac, src) for src in BAD_SOURCES + (vip,)]
    elif kind == "good":
        pairs = [(lb_mac, client)]
    else:
        print("unknown kind %s" % kind)
        return 2
    frames = []
    for mac, src in pairs:
        for i in range(count):
            frames.append(Ether(dst=mac, src=me) / IP(src=src, dst=vip) /
                          TCP(sport=SPORT_BASE + len(frames), dport=port, flags="S"))
    sendp(frames, iface=iface, verbose=False)
    print("%d frames sent" % len(frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
