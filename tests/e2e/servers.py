#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
# Tiny real servers for an end-to-end backend: HTTP on port 80 answering with the backend's name,
# and a UDP echo on port 53, each bound to every address given (VIPs on lo and the backend's own).
#
# Usage: servers.py NAME ADDR [ADDR ...] [--http-port N] [--udp-port N]
#
# Each socket is bound to one address, so a reply leaves with the address the request was sent to
# (the VIP): that is what direct server return needs, and what a wildcard UDP socket would not do.
# GET/HEAD answer "NAME\n"; POST/PUT read the body and answer "NAME BYTES\n" (uploads for PMTU tests).
import argparse
import http.server
import selectors
import signal
import socket
import socketserver
import sys
import threading

UDP_BUF_MAX = 65535  # bytes; largest UDP payload
UPLOAD_CHUNK = 65536  # bytes read at a time from a request body


def make_handler(name):
    body = (name + "\n").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "e2e-httpd"

        def log_message(self, fmt, *args):
            pass

        def reply(self, data, head=False):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def do_GET(self):
            self.reply(body)

        def do_HEAD(self):
            self.reply(body, head=True)

        def do_POST(self):
            left = int(self.headers.get("Content-Length", "0"))
            got = 0
            while left > 0:
                chunk = self.rfile.read(min(left, UPLOAD_CHUNK))
                if not chunk:
                    break
                got += len(chunk)
                left -= len(chunk)
            self.reply(("%s %d\n" % (name, got)).encode())

        do_PUT = do_POST

    return Handler


def http_server(addr, port, handler):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

        def server_bind(self):
            # HTTPServer.server_bind would resolve the address's name (DNS, which hangs offline).
            socketserver.TCPServer.server_bind(self)
            self.server_name = addr
            self.server_port = port

    return Server((addr, port), handler)


def udp_echo(addrs, port):
    sel = selectors.DefaultSelector()
    for addr in addrs:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            try:
                data, peer = s.recvfrom(UDP_BUF_MAX)
                s.sendto(data, peer)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("addrs", nargs="+")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=53)
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    handler = make_handler(a.name)
    for addr in a.addrs:
        srv = http_server(addr, a.http_port, handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    udp_echo(a.addrs, a.udp_port)


if __name__ == "__main__":
    main()
