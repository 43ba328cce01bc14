"""coffer's snapshot file: every key and value of a store, in one portable, checked, compressed file.

Layout::

    MAGIC (16 bytes: "COFFER-SNAPSHOT" and a format version byte)
    a zlib stream of:
        records, in strictly increasing key order: key length (4 bytes, big endian), the key (UTF-8),
                                                   value length (4 bytes), the value
        the end mark: 0xFFFFFFFF, then the number of records (8 bytes) and the SHA-256 of every record byte

Nothing may follow the zlib stream. The values are what storage holds (barrier-encrypted, except the
keyring, which the root key encrypts, and the seal configuration), so a snapshot reveals no more than the
storage it was taken from: key names, which it shares with the database file. Any backend's snapshot
restores into any backend.

``encode`` streams a snapshot out of a store's batches; ``read`` checks a whole file (one pass) and
answers what it holds; ``records`` iterates a file's records once it has been checked.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"COFFER-SNAPSHOT\x01"
_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">Q")
_END = 0xFFFFFFFF
#: The largest key and value a record may hold (a sanity bound: storage never holds values this large).
MAX_KEY = 64 * 1024
MAX_VALUE = 512 * 1024 * 1024
_CHUNK = 256 * 1024


class SnapshotError(ValueError):
    """The file is not a complete, intact coffer snapshot (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What a checked snapshot holds: its number of records and the values of the given keys."""

    count: int
    values: dict[str, bytes]


async def encode(batches: AsyncIterator[list[tuple[str, bytes]]]) -> AsyncIterator[bytes]:
    """The snapshot file of ``batches`` (a store's ``snapshot()``), as chunks of bytes."""
    compressor = zlib.compressobj(6)
    digest = hashlib.sha256()
    count = 0
    yield MAGIC
    async for batch in batches:
        parts: list[bytes] = []
        for key, value in batch:
            raw_key = key.encode("utf-8")
            parts += [_LENGTH.pack(len(raw_key)), raw_key, _LENGTH.pack(len(value)), value]
            count += 1
        plain = b"".join(parts)
        digest.update(plain)
        out = compressor.compress(plain)
        if out:
            yield out
    yield compressor.compress(_LENGTH.pack(_END) + _COUNT.pack(count) + digest.digest()) + compressor.flush()


class _Stream:
    """The decompressed bytes of a snapshot file, read on demand."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.inflater = zlib.decompressobj()
        self.buffer = bytearray()
        self.done = False

    def _fill(self, need: int) -> None:
        while len(self.buffer) < need:
            if self.inflater.eof:
                raise SnapshotError("the snapshot is damaged: its data ends in the middle of a record")
            chunk = self.file.read(_CHUNK)
            if not chunk:
                raise SnapshotError("the snapshot is truncated: the file ends before its end mark")
            try:
                self.buffer += self.inflater.decompress(chunk)
            except zlib.error:
                raise SnapshotError("the snapshot is damaged: its compressed data does not decompress") from None

    def take(self, size: int) -> bytes:
        self._fill(size)
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    def finish(self) -> None:
        """After the end mark: nothing may follow, neither in the stream nor in the file."""
        if self.buffer or self.inflater.unused_data:
            raise SnapshotError("the snapshot is damaged: data follows its end mark")
        while not self.inflater.eof:
            chunk = self.file.read(_CHUNK)
            if not chunk:
                raise SnapshotError("the snapshot is truncated: its compressed data is incomplete")
            try:
                rest = self.inflater.decompress(chunk)
            except zlib.error:
                raise SnapshotError("the snapshot is damaged: its compressed data does not decompress") from None
            if rest or self.inflater.unused_data:
                raise SnapshotError("the snapshot is damaged: data follows its end mark")
        if self.inflater.unused_data or self.file.read(1):
            raise SnapshotError("the snapshot is damaged: the file goes on after the snapshot")


def _records(file: BinaryIO, check: bool) -> Iterator[tuple[str, bytes]]:
    file.seek(0)
    if file.read(len(MAGIC)) != MAGIC:
        raise SnapshotError("the file is not a coffer snapshot (it does not start with coffer's snapshot header); "
                            "give a file that `coffer operator snapshot save` wrote")
    stream = _Stream(file)
    digest = hashlib.sha256()
    count = 0
    previous: str | None = None
    while True:
        head = stream.take(_LENGTH.size)
        (key_size,) = _LENGTH.unpack(head)
        if key_size == _END:
            tail = stream.take(_COUNT.size + 32)
            (stated,) = _COUNT.unpack(tail[: _COUNT.size])
            if check:
                if not hmac.compare_digest(tail[_COUNT.size :], digest.digest()):
                    raise SnapshotError("the snapshot is damaged: its checksum does not match its contents")
                if stated != count:
                    raise SnapshotError(f"the snapshot is damaged: it says {stated} records but holds {count}")
                stream.finish()
            return
        if key_size > MAX_KEY:
            raise SnapshotError("the snapshot is damaged: a record's key length is out of bounds")
        raw_key = stream.take(key_size)
        (value_size,) = _LENGTH.unpack(stream.take(_LENGTH.size))
        if value_size > MAX_VALUE:
            raise SnapshotError("the snapshot is damaged: a record's value length is out of bounds")
        value = stream.take(value_size)
        if check:
            digest.update(head + raw_key + _LENGTH.pack(value_size) + value)
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise SnapshotError("the snapshot is damaged: a key is not UTF-8 text") from None
        if previous is not None and key <= previous:
            raise SnapshotError("the snapshot is damaged: its keys are not in increasing order")
        previous = key
        count += 1
        yield key, value


def read(file: BinaryIO, keep: tuple[str, ...] = ()) -> SnapshotInfo:
    """Check the whole snapshot in ``file`` (SnapshotError when it is not intact); the values of ``keep``."""
    values: dict[str, bytes] = {}
    count = 0
    wanted = set(keep)
    for key, value in _records(file, check=True):
        count += 1
        if key in wanted:
            values[key] = value
    return SnapshotInfo(count, values)


def records(file: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """The records of a snapshot that ``read`` has checked (from the start of ``file``)."""
    return _records(file, check=False)
