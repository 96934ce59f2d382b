"""Seam for scapy: the only module that imports it, for the pcapng file format only.

netns_kit captures frames itself (:mod:`netns_kit.capture`); scapy's ``PcapNgWriter`` writes them
as pcapng blocks (a section header, one interface description per interface name, an enhanced
packet block per frame with its timestamp and direction) and ``PcapNgReader`` reads them back.
scapy is an optional dependency (``pip install 'netns-kit[capture]'``): without it, opening a
capture file raises :class:`~netns_kit.errors.UnsupportedError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import UnsupportedError

__all__ = ["PcapNgFile", "Record", "read"]

INBOUND, OUTBOUND = 1, 2  # pcapng epb_flags direction bits


def _scapy(step: str) -> Any:
    try:
        import scapy.layers.l2
        import scapy.utils
    except ImportError as exc:
        raise UnsupportedError("capturing to pcapng needs scapy: pip install 'netns-kit[capture]'",
                               step=step) from exc
    return scapy


class PcapNgFile:
    """A pcapng file being written: Ethernet frames with timestamp, interface name and direction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        sc = _scapy("open capture file")
        self.path = os.fspath(path)
        self._ether = sc.layers.l2.Ether
        self._writer = sc.utils.PcapNgWriter(self.path)
        self._writer.linktype = 1  # DLT_EN10MB: every frame is Ethernet
        self._closed = False

    def write(self, frame: bytes, *, timestamp: float, ifname: str, outbound: bool) -> None:
        pkt = self._ether(frame)
        pkt.time = timestamp
        pkt.sniffed_on = ifname
        pkt.direction = OUTBOUND if outbound else INBOUND
        self._writer.write(pkt)

    def close(self) -> None:
        """Flush and close (a capture with no frames still gets its section header). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer.flush()
        self._writer.close()


@dataclass(frozen=True, slots=True)
class Record:
    """One frame read back from a pcapng file."""

    frame: bytes
    timestamp: float
    ifname: str | None
    outbound: bool | None


def read(path: str | os.PathLike[str]) -> list[Record]:
    """Every frame of a pcapng file, in file order."""
    sc = _scapy("read capture file")
    out = []
    with sc.utils.PcapNgReader(os.fspath(path)) as reader:
        for pkt in reader:
            direction = getattr(pkt, "direction", None)
            out.append(Record(bytes(pkt), float(pkt.time), getattr(pkt, "sniffed_on", None),
                              None if direction not in (INBOUND, OUTBOUND) else direction == OUTBOUND))
    return out
