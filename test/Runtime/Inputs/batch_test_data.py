#!/usr/bin/env python3
"""Builds batched kiln-run --check data from a one-row ONNX test set.

    batch_test_data.py SRC_SET OUT_DIR

SRC_SET/input_0.pb (input_ids [1, S]) and output_0.pb (logits [1, S, V])
become OUT_DIR/test_data_set_0 with both rows duplicated ([2, S],
[2, S, V]), and OUT_DIR/test_data_set_1 with an attention_mask [2, S] that
masks a token (which --check refuses). Plain wire-format protobuf: no onnx
package needed.
"""
import os
import struct
import sys


def varint(data, pos):
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def encode_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fields(data):
    """(field, wire type, value) of each top-level field."""
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 2:
            n, pos = varint(data, pos)
            value, pos = data[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, value


def tensor(name, dims, data_type, raw):
    out = bytearray()
    for d in dims:
        out += encode_varint(1 << 3) + encode_varint(d)
    out += encode_varint(2 << 3) + encode_varint(data_type)
    nb = name.encode()
    out += encode_varint((8 << 3) | 2) + encode_varint(len(nb)) + nb
    out += encode_varint((9 << 3) | 2) + encode_varint(len(raw)) + raw
    return bytes(out)


def duplicate_rows(path):
    """The tensor at `path` ([1, ...]) as [2, ...] raw bytes, with its name,
    dims and data type."""
    dims, name, data_type, raw = [], "", 0, b""
    with open(path, "rb") as f:
        for field, wire, value in fields(f.read()):
            if field == 1 and wire == 0:
                dims.append(value)
            elif field == 1 and wire == 2:
                pos = 0
                while pos < len(value):
                    d, pos = varint(value, pos)
                    dims.append(d)
            elif field == 2:
                data_type = value
            elif field == 8:
                name = value.decode()
            elif field == 9:
                raw = bytes(value)
            elif field == 4:  # packed float_data
                raw = bytes(value)
            elif field == 7:  # packed int64_data (varints)
                pos, vals = 0, []
                while pos < len(value):
                    v, pos = varint(value, pos)
                    vals.append(v - (1 << 64) if v >= 1 << 63 else v)
                raw = struct.pack("<%dq" % len(vals), *vals)
    assert dims and dims[0] == 1, "expected one row in %s" % path
    return name, [2] + dims[1:], data_type, raw + raw


def main():
    src, out = sys.argv[1], sys.argv[2]
    ids = duplicate_rows(os.path.join(src, "input_0.pb"))
    logits = duplicate_rows(os.path.join(src, "output_0.pb"))
    for k in (0, 1):
        os.makedirs(os.path.join(out, "test_data_set_%d" % k), exist_ok=True)
    batch = os.path.join(out, "test_data_set_0")
    with open(os.path.join(batch, "input_0.pb"), "wb") as f:
        f.write(tensor(*ids))
    with open(os.path.join(batch, "output_0.pb"), "wb") as f:
        f.write(tensor(*logits))
    masked = os.path.join(out, "test_data_set_1")
    with open(os.path.join(masked, "input_0.pb"), "wb") as f:
        f.write(tensor(*ids))
    length = ids[1][1]
    mask = [1] * (2 * length)
    mask[length] = 0  # the first token of row 1 is padding
    with open(os.path.join(masked, "input_1.pb"), "wb") as f:
        f.write(tensor("attention_mask", [2, length], 7,
                       struct.pack("<%dq" % len(mask), *mask)))
    with open(os.path.join(masked, "output_0.pb"), "wb") as f:
        f.write(tensor(*logits))


if __name__ == "__main__":
    main()
