#!/usr/bin/env python3
"""A live dashboard without a browser: opens perfpilot's /ws/live as the Overview page
does, reads every frame (answering pings) for SECS seconds, and prints how many frames and
bytes arrived. Used by scripts/bench-overhead.sh so the process is measured while it feeds
a live dashboard. Standard library only.

    python3 scripts/live-client.py ws://127.0.0.1:3000/ws/live 60
"""
import base64
import os
import socket
import struct
import sys
import time
from urllib.parse import urlparse


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def follow(url, end, counts):
    """Reads one connection's frames until `end` or until the server closes it."""
    sock = socket.create_connection((url.hostname, url.port or 80), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
         f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1024)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        answer += chunk
    head, buffered = answer.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise ConnectionError(f"no websocket: {head.decode(errors='replace')}")

    def take(n):
        nonlocal buffered
        if len(buffered) >= n:
            out, buffered = buffered[:n], buffered[n:]
            return out
        out, buffered = buffered, b""
        return out + read_exact(sock, n - len(out))

    while time.monotonic() < end:
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            b0, b1 = take(2)
        except (socket.timeout, TimeoutError):
            return
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", take(8))[0]
        payload = take(n)
        opcode = b0 & 0x0F
        if opcode == 0x9:
            send_frame(sock, 0xA, payload)
        elif opcode == 0x8:
            raise ConnectionError("closed by the server")
        else:
            counts["frames"] += 1
            counts["bytes"] += n


def main():
    url = urlparse(sys.argv[1])
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    end = time.monotonic() + secs
    counts = {"frames": 0, "bytes": 0, "connections": 0}
    # The server may still be starting, and a socket it closes is opened again, as the
    # page's own client does.
    while time.monotonic() < end:
        try:
            counts["connections"] += 1
            follow(url, end, counts)
        except (OSError, ConnectionError):
            time.sleep(0.5)
    print(f"live client: {counts['frames']} frames, {counts['bytes']} bytes in {secs:.0f} s "
          f"over {counts['connections']} connection(s)")


if __name__ == "__main__":
    main()
