"""Copies a .kiln artifact, setting its kernel table's version to 99 and
fixing the checksums (payload, section table, header) so that only the
kernel table's own check can catch it."""
import struct
import sys
import zlib

data = bytearray(open(sys.argv[1], "rb").read())
count = struct.unpack_from("<I", data, 12)[0]
table = struct.unpack_from("<Q", data, 24)[0]
for i in range(count):
    entry = table + 64 * i
    kind, = struct.unpack_from("<I", data, entry)
    if kind != 2:
        continue
    offset, size = struct.unpack_from("<QQ", data, entry + 40)
    struct.pack_into("<I", data, offset + 4, 99)
    crc = zlib.crc32(bytes(data[offset:offset + size]))
    struct.pack_into("<I", data, entry + 56, crc)
struct.pack_into("<I", data, 36, zlib.crc32(bytes(data[table:table + 64 * count])))
struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[0:60])))
open(sys.argv[2], "wb").write(data)
