"""Read a TensorFlow (V2, "tensor bundle") checkpoint without TensorFlow or the protobuf package.

Example::

    from genrekit import tfcheckpoint
    tensors = tfcheckpoint.load(folder / "")             # prefix "<folder>/": files ".index", ".data-*"
    tensors["conv2d/kernel"].shape                       # (7, 38, 1, 204), float32 numpy array

A checkpoint with prefix ``P`` is two kinds of file:
- ``P.index``: a LevelDB-format table (data blocks of prefix-compressed key/value entries, an index
  block, a 48-byte footer ending in the magic number 0xdb4775248b80fb57; every block followed by a
  compression byte and the masked crc32c of the block). Keys are variable names, values are
  ``BundleEntryProto`` messages: dtype (1), shape (2), shard_id (3), offset (4), size (5),
  crc32c (6, masked). The entry with the empty key is the ``BundleHeaderProto`` (num_shards (1),
  endianness (2)).
- ``P.data-SSSSS-of-NNNNN``: the raw little-endian bytes of the tensors, at the entries' offsets.

Everything is checked: the footer magic, every block's checksum, every tensor's size and checksum. A
missing, truncated or altered file raises :class:`CheckpointError`, one line naming the file.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB table footer magic (little-endian fixed64)
FOOTER_BYTES = 48                 # two block handles (varints) padded to 40 bytes + the 8-byte magic
BLOCK_TRAILER_BYTES = 5           # after each block: compression type (1 byte) + masked crc32c (4 bytes)
DTYPES = {  # TensorFlow DataType enum -> numpy dtype (little-endian); the numeric types a model holds
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 14: "<u2",
    17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8",
}


class CheckpointError(Exception):
    """A checkpoint file that is missing, truncated, altered or not a tensor bundle; one line naming the file."""


# --- crc32c (Castagnoli), numpy ------------------------------------------------------------------

def _crc_table() -> np.ndarray:
    """The byte table of the reflected CRC-32C polynomial 0x82F63B78: (256,) uint32."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_TABLE = _crc_table()


def _run(reg: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Feed the bytes ``columns`` (steps, lanes) uint8 into the CRC registers ``reg`` (lanes,), one step per row."""
    for byte in columns:
        reg = _TABLE[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    return reg


@functools.lru_cache(maxsize=None)
def _shift_tables(n: int) -> tuple[list[int], ...]:
    """Tables (4, 256) uint32 of the linear map 'feed n zero bytes' on a raw CRC register, one per register byte."""
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    cols = _run(basis, np.zeros((n, 32), np.uint8))          # image of each register bit
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1      # (256, 8): the bits of each byte value
    tables = np.zeros((4, 256), np.uint32)
    for k in range(4):
        for i in range(8):
            tables[k] ^= np.where(bits[:, i] == 1, cols[8 * k + i], np.uint32(0)).astype(np.uint32)
    return tuple(t.tolist() for t in tables)


def _lane_bytes(n: int) -> int:
    """Lane length for ``n`` bytes: numpy steps (lane length) and Python steps (lanes) both stay small."""
    return 16 if n <= 4096 else 128 if n <= 262_144 else 1024


def crc32c(data) -> int:
    """CRC-32C (Castagnoli, as TensorFlow and LevelDB) of ``data`` (bytes-like), as an int.

    The bytes are cut into lanes (16 B to 1 KB) run side by side with numpy and the lanes' registers are then
    chained (a CRC register is linear: feeding a lane from state s gives shift(s) xor the lane's CRC
    from 0). A leading zero byte does not change a register that is 0, so the data is front-padded to
    whole lanes, and the initial 0xFFFFFFFF is applied by complementing the first 4 bytes instead.
    """
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if buf.size < 4:
        return int(_run(np.array([0xFFFFFFFF], np.uint32), buf[:, None])[0]) ^ 0xFFFFFFFF
    lane = _lane_bytes(buf.size)
    pad = (-buf.size) % lane
    lanes = np.zeros(pad + buf.size, np.uint8)
    lanes[pad:] = buf
    lanes[pad:pad + 4] ^= 0xFF
    raw = _run(np.zeros(lanes.size // lane, np.uint32), lanes.reshape(-1, lane).T)
    state = 0
    t0, t1, t2, t3 = _shift_tables(lane)
    for crc in raw.tolist():
        state = t0[state & 0xFF] ^ t1[(state >> 8) & 0xFF] ^ t2[(state >> 16) & 0xFF] ^ t3[state >> 24] ^ crc
    return state ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """LevelDB/TensorFlow's masked CRC (stored so that a CRC of data containing CRCs stays meaningful)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- protobuf wire format and LevelDB table --------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``: (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(msg: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message: ints for varint/fixed fields, bytes for
    length-delimited ones."""
    out, pos = [], 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", msg, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(msg, pos)
            if pos + length > len(msg):
                raise ValueError("truncated field")
            value, pos = msg[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", msg, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


_ENTRY_FIELDS = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size", 6: "crc32c"}  # BundleEntryProto scalars


def _entry(msg: bytes) -> dict:
    """A BundleEntryProto as a dict: dtype, shape (tuple), shard_id, offset, size, crc32c (masked)."""
    entry = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0, "slices": False}
    for number, value in _fields(msg):
        if number == 2:  # TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1)
            dims = [dict(_fields(d)).get(1, 0) for n, d in _fields(value) if n == 2]
            entry["shape"] = tuple(int(d) for d in dims)
        elif number == 7:
            entry["slices"] = True
        elif number in _ENTRY_FIELDS:
            entry[_ENTRY_FIELDS[number]] = value
    return entry


def _block(table: bytes, offset: int, size: int) -> bytes:
    """The contents of the table block at ``offset``, checksum and compression byte verified."""
    if offset + size + BLOCK_TRAILER_BYTES > len(table):
        raise ValueError(f"block at {offset} runs past the end of the file")
    contents = table[offset:offset + size]
    kind, stored = struct.unpack_from("<BI", table, offset + size)
    if mask(crc32c(contents + bytes([kind]))) != stored:
        raise ValueError(f"checksum mismatch in the block at byte {offset}")
    if kind != 0:
        raise ValueError(f"compressed block (type {kind}) at byte {offset}; only uncompressed tables are supported")
    return contents


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of a LevelDB block (shared-prefix keys, restart array at the end)."""
    if len(block) < 4:
        raise ValueError("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ValueError("bad restart count")
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + length > end:
            raise ValueError("bad block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + length]))
        pos += length
    return out


def _table(table: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB table file's contents, in key order."""
    if len(table) < FOOTER_BYTES:
        raise ValueError(f"file too short ({len(table)} bytes) for a table footer")
    footer = table[-FOOTER_BYTES:]
    if struct.unpack_from("<Q", footer, FOOTER_BYTES - 8)[0] != TABLE_MAGIC:
        raise ValueError("not a LevelDB table (footer magic missing)")
    _, pos = _varint(footer, 0)          # metaindex handle: offset
    _, pos = _varint(footer, pos)        #                   size
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    out = []
    for _, handle in _block_entries(_block(table, index_offset, index_size)):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        out.extend(_block_entries(_block(table, offset, size)))
    return out


# --- the bundle ------------------------------------------------------------------------------------

class Checkpoint:
    """The tensor bundle with prefix ``prefix`` (files ``prefix + ".index"`` and ``prefix + ".data-*"``).

    ``entries``: variable name -> entry dict (dtype, shape, shard_id, offset, size, crc32c), read and
    verified from the index on construction. ``tensor(name)`` reads one tensor, checking its size and
    checksum. Raises CheckpointError (one line naming the file).
    """

    def __init__(self, prefix):
        self.prefix = str(prefix)
        self.index_path = Path(self.prefix + ".index")
        try:
            raw = self.index_path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"{self.index_path}: cannot read the checkpoint index ({err.strerror or err})") from None
        try:
            items = _table(raw)
            header = dict(_fields(dict(items)[b""])) if items and items[0][0] == b"" else None
            entries = {key.decode("utf-8"): _entry(value) for key, value in items if key}
        except (ValueError, struct.error, UnicodeDecodeError, KeyError) as err:
            raise CheckpointError(f"{self.index_path}: not a valid TensorFlow checkpoint index ({err})") from None
        if header is None:
            raise CheckpointError(f"{self.index_path}: not a valid TensorFlow checkpoint index (no bundle header)")
        if header.get(2, 0) != 0:
            raise CheckpointError(f"{self.index_path}: big-endian checkpoints are not supported")
        self.num_shards = int(header.get(1, 1))
        self.entries = entries
        self._data: dict[int, bytes] = {}

    def data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _shard(self, shard: int) -> bytes:
        if shard not in self._data:
            path = self.data_path(shard)
            try:
                self._data[shard] = path.read_bytes()
            except OSError as err:
                raise CheckpointError(f"{path}: cannot read the checkpoint data ({err.strerror or err})") from None
        return self._data[shard]

    def tensor(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a numpy array of its dtype and shape (size and crc32c verified)."""
        if name not in self.entries:
            raise CheckpointError(f"{self.index_path}: no variable '{name}' in the checkpoint")
        e = self.entries[name]
        if e["slices"] or e["dtype"] not in DTYPES:
            raise CheckpointError(f"{self.index_path}: variable '{name}' has an unsupported type "
                                  f"(dtype {e['dtype']}{', sliced' if e['slices'] else ''})")
        dtype = np.dtype(DTYPES[e["dtype"]])
        count = int(np.prod(e["shape"], dtype=np.int64))
        if count * dtype.itemsize != e["size"]:
            raise CheckpointError(f"{self.index_path}: variable '{name}' records {e['size']} bytes for shape "
                                  f"{e['shape']} of {dtype} (altered index)")
        data, path = self._shard(e["shard_id"]), self.data_path(e["shard_id"])
        if e["offset"] + e["size"] > len(data):
            raise CheckpointError(f"{path}: truncated ({len(data)} bytes; variable '{name}' needs bytes "
                                  f"{e['offset']}..{e['offset'] + e['size']})")
        raw = data[e["offset"]:e["offset"] + e["size"]]
        if mask(crc32c(raw)) != e["crc32c"]:
            raise CheckpointError(f"{path}: checksum mismatch for variable '{name}' (altered or damaged file)")
        return np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).copy()


def load(prefix, names=None) -> dict[str, np.ndarray]:
    """Tensors of the checkpoint with prefix ``prefix``: {name: array} for ``names`` (default: all),
    every one verified. Raises CheckpointError (one line naming the file)."""
    ckpt = Checkpoint(prefix)
    return {name: ckpt.tensor(name) for name in (ckpt.entries if names is None else names)}
