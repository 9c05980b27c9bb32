#!/usr/bin/env python3
"""Independent check of rdd's safetensors files (the C++ side is tests/engine/test_safetensors.cpp).

    check_safetensors_reader.py FILE           check a file rdd wrote; prints "ok: ..." or exits 1
    check_safetensors_reader.py --write FILE   write the same content with safetensors_np, for rdd to read

The content is fixed and regenerated here from formulas of the flat (row-major, logical NCHW) index i,
the same formulas the C++ test uses:

    F32   float32((i - 17) / 3)          F64  (i - 17) / 3            (correctly rounded divisions)
    BF16  (i % 64 - 32) / 4              F16  (i % 200 - 100) / 16    (exact in 16 bits)
    I32   i * 7919 - 50000               I64  i * 2**40 - 3
    U8    (i * 37 + 11) % 256

"nhwc_f32" is written by rdd from an NHWC tensor: the file must hold it in logical NCHW order.
Besides the values, a file written by rdd must have the writer's layout: header length a multiple of 8
padded with spaces, keys in sorted order, tensors stored in name order with no gaps.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402

EXPECTED = {  # name -> (safetensors dtype, shape)
    "a_f32_4d": ("F32", (2, 3, 4, 5)),
    "b_f64_1d": ("F64", (37,)),
    "c_bf16_2d": ("BF16", (3, 7)),
    "d_f16_3d": ("F16", (2, 3, 5)),
    "e_i32_1d": ("I32", (50,)),
    "f_i64_0d": ("I64", ()),
    "g_i64_2d": ("I64", (4, 9)),
    "h_u8_1d": ("U8", (300,)),
    "i_f32_empty": ("F32", (3, 0, 2)),
    "nhwc_f32": ("F32", (2, 3, 4, 5)),
}
METADATA = {"rdd.check": "safetensors-reader-v1", "unicode": "gr\u00fc\u00dfe \u2713", "empty": ""}


def expected_values(dtype, shape):
    """The values for a tensor, as float64 (BF16) or the tensor's own numpy dtype."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    if dtype == "F32":
        v = ((i - 17) / 3.0).astype(np.float32)
    elif dtype == "F64":
        v = (i - 17) / 3.0
    elif dtype == "BF16":
        v = ((i % 64 - 32) / 4.0).astype(np.float32)
    elif dtype == "F16":
        v = ((i % 200 - 100) / 16.0).astype(np.float16)
    elif dtype == "I32":
        v = (i * 7919 - 50000).astype(np.int32)
    elif dtype == "I64":
        v = i * (1 << 40) - 3
    elif dtype == "U8":
        v = ((i * 37 + 11) % 256).astype(np.uint8)
    else:
        raise ValueError(dtype)
    return v.reshape(shape)


def check_layout(path, errors):
    """The writer's promises, read from the raw bytes (independently of safetensors_np.load)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    raw = data[8:8 + n]
    if n % 8 != 0:
        errors.append("header length %d is not a multiple of 8" % n)
    text = raw.decode("utf-8")
    body = text.rstrip(" ")
    if len(text) - len(body) >= 8 or not body.endswith("}"):
        errors.append("header padding is not 0..7 spaces after the JSON object")
    pairs = json.loads(body, object_pairs_hook=lambda p: p)
    keys = [k for k, _ in pairs]
    if keys != sorted(keys):
        errors.append("header keys are not sorted: %s" % keys)
    names = sorted(k for k in keys if k != "__metadata__")
    info = dict(pairs)
    cursor = 0
    for name in names:
        begin, end = dict(info[name])["data_offsets"]
        if begin != cursor:
            errors.append("tensor %r starts at %d, expected %d (name order, contiguous)" % (name, begin, cursor))
        cursor = end
    if cursor != len(data) - 8 - n:
        errors.append("data section is %d bytes, tensors cover %d" % (len(data) - 8 - n, cursor))


def check(path):
    errors = []
    try:
        tensors, metadata = st.load(path)
    except (OSError, ValueError) as e:
        print("FAIL: %s" % e)
        return 1
    check_layout(path, errors)
    if metadata != METADATA:
        errors.append("metadata %r, expected %r" % (metadata, METADATA))
    if set(tensors) != set(EXPECTED):
        errors.append("tensors %s, expected %s" % (sorted(tensors), sorted(EXPECTED)))
    for name, (dtype, shape) in sorted(EXPECTED.items()):
        if name not in tensors:
            continue
        got = tensors[name]
        want = expected_values(dtype, shape)
        if dtype == "BF16":
            if got.dtype != np.uint16:
                errors.append("%s: BF16 loaded as %s" % (name, got.dtype))
                continue
            got = st.bf16_to_f32(got)
        if got.shape != tuple(shape):
            errors.append("%s: shape %s, expected %s" % (name, got.shape, shape))
            continue
        if got.dtype != want.dtype:
            errors.append("%s: dtype %s, expected %s" % (name, got.dtype, want.dtype))
            continue
        bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
        if bad.size:
            k = int(bad[0])
            errors.append("%s: %d of %d values differ, first at flat index %d: %r, expected %r"
                          % (name, bad.size, want.size, k, got.reshape(-1)[k], want.reshape(-1)[k]))
    if errors:
        for e in errors:
            print("FAIL: %s" % e)
        return 1
    print("ok: %d tensors and %d metadata entries match (%s)" % (len(tensors), len(metadata), path))
    return 0


def write(path):
    tensors = {name: expected_values(dtype, shape) for name, (dtype, shape) in EXPECTED.items()}
    dtypes = {name: dtype for name, (dtype, _) in EXPECTED.items() if dtype == "BF16"}
    st.save(path, tensors, METADATA, dtypes=dtypes)
    print("ok: wrote %d tensors to %s" % (len(tensors), path))
    return 0


def main(argv):
    if len(argv) == 2:
        return check(argv[1])
    if len(argv) == 3 and argv[1] == "--write":
        return write(argv[2])
    print(__doc__.strip().splitlines()[2].strip())
    print(__doc__.strip().splitlines()[3].strip())
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
