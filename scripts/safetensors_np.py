"""safetensors on numpy: a small, independent reader and writer (standard library + numpy only).

rdd writes its weights and checkpoints as safetensors files; the parity and golden-case scripts use this
module to read them (and to write inputs for rdd) without the `safetensors` package.

    import safetensors_np as st
    tensors, metadata = st.load("model.safetensors")       # name -> np.ndarray, str -> str
    w = st.bf16_to_f32(tensors["w"])                        # BF16 loads as uint16 bit patterns
    st.save("out.safetensors", {"x": x, "w": w}, {"note": "hi"}, dtypes={"w": "BF16"})

File layout: [8 bytes: N, little-endian u64][N bytes: JSON header, space padded][data]; the header maps
each name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section)
plus an optional "__metadata__" object of strings. Tensors are row-major, little-endian.

`load` checks what the format requires (offsets in range and consistent with dtype x shape, tensors
tiling the data section with no overlap and no gap) and raises ValueError naming the file and the
tensor. The arrays it returns are writable copies.
"""

import json
import os

import numpy as np

# safetensors dtype name -> numpy dtype (little-endian). BF16 has no numpy type: it is carried as
# its uint16 bit pattern (see bf16_to_f32 / f32_to_bf16).
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# numpy dtype -> safetensors name, for save() without an override (uint16 means U16, not BF16).
_NAME_OF = {
    np.dtype("f8"): "F64",
    np.dtype("f4"): "F32",
    np.dtype("f2"): "F16",
    np.dtype("i8"): "I64",
    np.dtype("i4"): "I32",
    np.dtype("i2"): "I16",
    np.dtype("i1"): "I8",
    np.dtype("u8"): "U64",
    np.dtype("u4"): "U32",
    np.dtype("u2"): "U16",
    np.dtype("u1"): "U8",
    np.dtype("?"): "BOOL",
}

MAX_HEADER_BYTES = 100 * 1000 * 1000
METADATA_KEY = "__metadata__"


def bf16_to_f32(bits):
    """BF16 bit patterns (uint16 array) -> float32 array of the same shape (exact)."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError("bf16_to_f32: expected uint16 bit patterns, got %s" % bits.dtype)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values):
    """float32 values -> BF16 bit patterns (uint16), rounding to nearest even; NaN stays NaN."""
    f = np.ascontiguousarray(values, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded.reshape(f.shape)


def _fail(path, msg):
    raise ValueError("%s: %s" % (path, msg))


def _is_index(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def loads(data, path="<bytes>"):
    """Parse safetensors bytes -> (dict name -> np.ndarray, metadata dict). `path` names the source."""
    if len(data) < 8:
        _fail(path, "file is %d bytes, too short for the 8-byte header length" % len(data))
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES:
        _fail(path, "header length %d exceeds the %d-byte limit" % (n, MAX_HEADER_BYTES))
    if n > len(data) - 8:
        _fail(path, "header length %d runs past the end of the file (%d bytes)" % (n, len(data)))
    raw = bytes(data[8:8 + n])
    if not raw.startswith(b"{"):
        _fail(path, "header does not start with '{'")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        _fail(path, "header is not valid JSON: %s" % e)
    if not isinstance(header, dict):
        _fail(path, "header is not a JSON object")
    data_size = len(data) - 8 - n
    payload = memoryview(data)[8 + n:]

    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        _fail(path, "'__metadata__' must be an object of strings")

    entries = []
    for name, info in header.items():
        who = "tensor %r" % name
        if not isinstance(info, dict) or not all(k in info for k in ("dtype", "shape", "data_offsets")):
            _fail(path, "%s: entry must be an object with dtype, shape and data_offsets" % who)
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            _fail(path, "%s: unsupported dtype %r" % (who, dtype))
        if not isinstance(shape, list) or not all(_is_index(d) for d in shape):
            _fail(path, "%s: shape %r is not a list of non-negative integers" % (who, shape))
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_index(o) for o in offsets):
            _fail(path, "%s: data_offsets %r is not [begin, end]" % (who, offsets))
        begin, end = offsets
        nbytes = int(np.prod(shape, dtype=object)) * DTYPES[dtype].itemsize
        if begin > end or end > data_size:
            _fail(path, "%s: data_offsets %r outside the data section (%d bytes)" % (who, offsets, data_size))
        if end - begin != nbytes:
            _fail(path, "%s: data_offsets %r hold %d bytes, %s %r needs %d" % (who, offsets, end - begin, dtype,
                                                                            shape, nbytes))
        entries.append((begin, end, name, dtype, shape))

    cursor = 0
    for begin, end, name, _, _ in sorted(entries, key=lambda e: (e[0], e[1])):
        if begin < cursor:
            _fail(path, "tensor %r overlaps the tensor before it" % name)
        if begin > cursor:
            _fail(path, "gap in the data section: bytes [%d, %d) before tensor %r" % (cursor, begin, name))
        cursor = end
    if cursor != data_size:
        _fail(path, "gap in the data section: bytes [%d, %d) at its end" % (cursor, data_size))

    tensors = {}
    for begin, end, name, dtype, shape in entries:
        arr = np.frombuffer(payload[begin:end], dtype=DTYPES[dtype]).reshape(shape).copy()
        tensors[name] = arr
    return tensors, dict(metadata)


def load(path):
    """Read a safetensors file -> (dict name -> np.ndarray, metadata dict). BF16 arrays are uint16 bits."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, str(path))


def dumps(tensors, metadata=None, dtypes=None):
    """Serialize to bytes. See save()."""
    dtypes = dict(dtypes or {})
    unknown = set(dtypes) - set(tensors)
    if unknown:
        raise ValueError("dtypes override names unknown tensors: %s" % sorted(unknown))
    header = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        header[METADATA_KEY] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if name == METADATA_KEY:
            raise ValueError("a tensor cannot be named %r" % METADATA_KEY)
        arr = np.asarray(tensors[name])
        dtype = dtypes.get(name)
        if dtype == "BF16":
            arr = arr if arr.dtype == np.uint16 else f32_to_bf16(arr)
        elif dtype is not None:
            if dtype not in DTYPES:
                raise ValueError("tensor %r: unsupported dtype %r" % (name, dtype))
            arr = arr.astype(DTYPES[dtype])
        else:
            dtype = _NAME_OF.get(arr.dtype.newbyteorder("="))
            if dtype is None:
                raise TypeError("tensor %r: numpy dtype %s has no safetensors name" % (name, arr.dtype))
        blob = np.ascontiguousarray(arr, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def save(path, tensors, metadata=None, dtypes=None):
    """Write tensors (dict name -> array-like) and metadata (dict str -> str) to `path`.

    Tensors are stored in name order, contiguous; each array's numpy dtype picks the safetensors dtype
    unless `dtypes` (name -> "BF16", "F16", ...) overrides it. For "BF16", float arrays are rounded to
    bfloat16 (nearest even) and uint16 arrays are taken as bit patterns. The file is written to a
    temporary name and renamed into place.
    """
    data = dumps(tensors, metadata, dtypes)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
