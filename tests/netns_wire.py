"""A network link in user space, for kernels without `tc netem` (this one: CONFIG_NET_SCH_NETEM unset).

    python netns_wire.py HOST_NS HOST_DEV SWITCH_NS SWITCH_DEV

makes a TAP device in each network namespace and forwards Ethernet frames between them. Commands
on standard input, each answered `ok` on standard output:

    down | up                     drop every frame both ways (a pulled cable) / forward again
    impair DELAY_MS LOSS SEED     frames leaving the host wait DELAY_MS and are dropped with
                                  probability LOSS (netem's `delay` and `loss` on the host's side)
    clear                         no delay, no loss

The harness (netns_support.py) bridges SWITCH_DEV like the veth of any other host."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import random
import struct
import sys

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
libc = ctypes.CDLL(None, use_errno=True)


def tap_in(namespace: str, name: str) -> int:
    ns = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    if libc.setns(ns, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {namespace}")
    os.close(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Wire:
    def __init__(self, host: int, switch: int) -> None:
        self.host, self.switch = host, switch
        self.up = True
        self.delay = 0.0
        self.loss = 0.0
        self.rng = random.Random(0)
        self.sent = self.dropped = 0

    def forward(self, src: int, dst: int, impaired: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = os.read(src, 65536)
            except BlockingIOError:
                return
            if not self.up or (impaired and self.loss and self.rng.random() < self.loss):
                self.dropped += 1
                continue
            self.sent += 1
            if impaired and self.delay:
                loop.call_later(self.delay, self._write, dst, frame)
            else:
                self._write(dst, frame)

    def _write(self, dst: int, frame: bytes) -> None:
        if not self.up:
            return
        try:
            os.write(dst, frame)
        except (BlockingIOError, OSError):
            self.dropped += 1

    def command(self, line: str) -> str:
        words = line.split()
        if words == ["down"]:
            self.up = False
        elif words == ["up"]:
            self.up = True
        elif words and words[0] == "impair" and len(words) == 4:
            self.delay, self.loss = float(words[1]) / 1000, float(words[2])
            self.rng = random.Random(int(words[3]))
        elif words == ["clear"]:
            self.delay, self.loss = 0.0, 0.0
        elif words == ["stats"]:
            return f"ok sent={self.sent} dropped={self.dropped}"
        else:
            return f"error: unknown command {line!r}"
        return "ok"


async def main(host_ns: str, host_dev: str, switch_ns: str, switch_dev: str) -> None:
    wire = Wire(tap_in(host_ns, host_dev), tap_in(switch_ns, switch_dev))
    loop = asyncio.get_running_loop()
    loop.add_reader(wire.host, wire.forward, wire.host, wire.switch, True)
    loop.add_reader(wire.switch, wire.forward, wire.switch, wire.host, False)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := (await reader.readline()).decode():
        print(wire.command(line.strip()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
