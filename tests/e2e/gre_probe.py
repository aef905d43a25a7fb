#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# Sends one UDP datagram to a VIP wrapped in GRE to maglevd's own address (re-target mode) and
# prints what comes back to the inner source port (the backend's echo, sent straight to us).
#
# Usage: gre_probe.py CLIENT_ADDR LB_ADDR VIP PORT PAYLOAD   (IPv4 only; exit 0 if echoed)
import socket
import struct
import sys

CLIENT_PORT = 40053  # inner UDP source port the echo comes back to
TIMEOUT = 2.0        # seconds to wait for the echo
GRE_PROTO_IPV4 = 0x0800


def ip_checksum(hdr):
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    client, lb, vip, port, payload = sys.argv[1:6]
    data = payload.encode()
    udp = struct.pack("!HHHH", CLIENT_PORT, int(port), 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, socket.IPPROTO_UDP,
                     0, socket.inet_aton(client), socket.inet_aton(vip))
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    gre = struct.pack("!HH", 0, GRE_PROTO_IPV4)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((client, CLIENT_PORT))
    rx.settimeout(TIMEOUT)
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
    tx.sendto(gre + ip + udp, (lb, 0))
    try:
        got, src = rx.recvfrom(65535)
    except socket.timeout:
        print("no answer")
        return 1
    print("%s from %s:%d" % (got.decode(errors="replace"), src[0], src[1]))
    return 0 if got == data and src[0] == vip else 1


if __name__ == "__main__":
    sys.exit(main())
