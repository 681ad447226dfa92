"""Resource records as answers.py decides them, and each record's wire form.

These are our own small value types rather than dnslib's: a dnslib record IDNA-encodes
its names and checks every field through descriptors, about 25 µs a record, so a
60-instance SRV answer with its glue cost some 30 ms to pack, and a client varying
its EDNS size could keep the server busy packing. Here a record packs in about a
microsecond: names are encoded once (`encode_name` is cached) and compressed against
a `NameTable` of the names already in the message.

Packing never looks at the catalog; text that cannot be put on the wire (a label over
63 bytes, an address that does not parse) raises ValueError or OSError, which the
responder turns into one SERVFAIL per snapshot and question.
"""

from __future__ import annotations

import functools
import socket
import struct
from dataclasses import dataclass
from typing import Union

TYPE_A = 1
TYPE_NS = 2
TYPE_SOA = 6
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
CLASS_IN = 1
POINTER_LIMIT = 0x3FFF  # a compression pointer holds 14 bits of offset
QUESTION_OFFSET = 12  # the question's name starts right after the header

_RR_FIXED = struct.Struct("!HHIH")
_SRV_FIXED = struct.Struct("!HHH")
SOA_TIMES = struct.Struct("!IIIII")  # an SOA's rdata ends with them (the responder restamps the serial)


@functools.lru_cache(maxsize=4096)
def encode_name(name: str) -> bytes:
    """`web1.node.internal.` -> its uncompressed wire form (labels as given, case kept).

    Non-ASCII text (never in names the schema accepts) is written as UTF-8 with
    backslash escapes for what UTF-8 cannot hold, so odd catalog content still packs.
    """
    labels = [label.encode("utf-8", "backslashreplace") for label in name.rstrip(".").split(".")] if name.strip(".") else []
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"name {name!r} has an empty label or one longer than 63 bytes")
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > 255:
        raise ValueError(f"name {name!r} is longer than 255 bytes")
    return wire


class NameTable:
    """Names already in a message, for compression: lower-cased wire suffix -> its offset.

    Seeded with the question's name, so that owner names equal to or under it become
    pointers into the asker's own question bytes.
    """

    def __init__(self, qname_key: bytes) -> None:
        """`qname_key`: the question's name in wire form, lower-cased."""
        self._offsets: dict[bytes, int] = {}
        prefix = 0
        while qname_key[prefix]:
            self._offsets[qname_key[prefix:]] = QUESTION_OFFSET + prefix
            prefix += 1 + qname_key[prefix]

    def encode(self, name: str, at: int, remember: bool = True) -> bytes:
        """`name` written at offset `at`: its labels up to the longest suffix already in
        the message, then a pointer there. `remember=False` leaves the table as it was,
        for records whose place in the message is not fixed (rotated answers)."""
        wire = encode_name(name)
        key = wire.lower()
        prefix = 0  # bytes of `wire` written before the pointer
        while key[prefix]:
            suffix = key[prefix:]
            found = self._offsets.get(suffix)
            if found is not None:
                return wire[:prefix] + (0xC000 | found).to_bytes(2, "big")
            if remember and at + prefix <= POINTER_LIMIT:
                self._offsets[suffix] = at + prefix
            prefix += 1 + key[prefix]
        return wire


@dataclass(frozen=True, slots=True)
class A:
    address: str

    def pack(self, names: NameTable, at: int, remember: bool) -> bytes:
        return socket.inet_pton(socket.AF_INET, self.address)


@dataclass(frozen=True, slots=True)
class AAAA:
    address: str

    def pack(self, names: NameTable, at: int, remember: bool) -> bytes:
        return socket.inet_pton(socket.AF_INET6, self.address)


@dataclass(frozen=True, slots=True)
class NS:
    target: str

    def pack(self, names: NameTable, at: int, remember: bool) -> bytes:
        return names.encode(self.target, at, remember)


@dataclass(frozen=True, slots=True)
class SOA:
    mname: str
    rname: str
    times: tuple[int, int, int, int, int]  # serial, refresh, retry, expire, minimum

    def pack(self, names: NameTable, at: int, remember: bool) -> bytes:
        mname = names.encode(self.mname, at, remember)
        rname = names.encode(self.rname, at + len(mname), remember)
        return mname + rname + SOA_TIMES.pack(*self.times)


@dataclass(frozen=True, slots=True)
class SRV:
    priority: int
    weight: int
    port: int
    target: str

    def pack(self, names: NameTable, at: int, remember: bool) -> bytes:
        # RFC 2782: the target is never compressed.
        return _SRV_FIXED.pack(self.priority, self.weight, self.port) + encode_name(self.target)


@dataclass(frozen=True, slots=True)
class TXT:
    strings: tuple[bytes, ...]  # character-strings, each at most 255 bytes

    def pack(self, names: NameTable, at: int, remember: bool) -> bytes:
        if any(len(s) > 255 for s in self.strings):
            raise ValueError("a TXT character-string is longer than 255 bytes")
        return b"".join(bytes([len(s)]) + s for s in self.strings)


Rdata = Union[A, AAAA, NS, SOA, SRV, TXT]


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; `owner=None` means the question's own name (case kept)."""

    owner: str | None
    rtype: int
    rdata: Rdata
    ttl: int

    def pack(self, names: NameTable, at: int, remember: bool = True) -> bytes:
        """The record written at offset `at` of a message whose names so far are `names`."""
        owner = b"\xc0\x0c" if self.owner is None else names.encode(self.owner, at, remember)
        start = at + len(owner) + _RR_FIXED.size
        rdata = self.rdata.pack(names, start, remember)
        if len(rdata) > 0xFFFF:
            raise ValueError("record data longer than 65535 bytes")
        return owner + _RR_FIXED.pack(self.rtype, CLASS_IN, self.ttl, len(rdata)) + rdata


def character_strings(text: str) -> tuple[bytes, ...]:
    """TXT text as character-strings of at most 255 bytes.

    Written as UTF-8; what UTF-8 cannot hold (a lone surrogate) is written as a
    backslash escape instead of failing the whole answer.
    """
    raw = text.encode("utf-8", "backslashreplace")
    return tuple(raw[i : i + 255] for i in range(0, len(raw), 255)) or (b"",)
