#!/usr/bin/python3
"""Free loopback ports for servers a test or script starts as processes.

A port found free by binding port 0 lies in the kernel's ephemeral range,
where any socket of anything running alongside (a client's connect, another
bind to port 0) may take it before the server binds it. Below that range the
kernel hands out no port by itself, so only an explicit bind can collide.
testkit/ports.go is the same rule for the Go tests.

    scripts/freeports.py N    prints N consecutive free ports, space-separated
"""

import random
import socket
import sys

LOWEST = 15000  # above the registered ports local services tend to use


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _run_free(base, n):
    socks = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_ports(n):
    """n consecutive loopback ports, free now, below the ephemeral range."""
    top = _ephemeral_low() - n
    for _ in range(200):
        if top > LOWEST:
            base = random.randrange(LOWEST, top)
        else:  # no room below the ephemeral range: a run inside it
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
            s.close()
            if base + n > 65536:
                continue
        if _run_free(base, n):
            return list(range(base, base + n))
    raise OSError("no %d free consecutive loopback ports" % n)


if __name__ == "__main__":
    print(" ".join(str(p) for p in free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
