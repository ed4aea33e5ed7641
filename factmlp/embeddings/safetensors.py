"""The safetensors file format, read and written here (no dependency on the safetensors package).

A file is a u64 little-endian header length N, N bytes of JSON, then the raw data buffer. The JSON
maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the buffer),
plus an optional "__metadata__" mapping of strings (a capture's provenance).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

# safetensors dtype codes → little-endian numpy dtypes (BF16 is widened by hand, see _bf16).
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}
_CODES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}  # what ``write`` writes
MAX_HEADER = 100 * 1024 * 1024


def read_header(path: str) -> tuple[dict, int]:
    """The parsed JSON header and the offset of the data buffer; ValueError('<path>: ...') if unreadable."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ValueError(f"{path}: too short for a safetensors file ({size} bytes)")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > min(size - 8, MAX_HEADER):
                raise ValueError(f"{path}: safetensors header length {header_len} exceeds the file ({size} bytes)")
            header = json.loads(fh.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: safetensors header is not valid JSON ({err})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the file ({err.strerror})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    return header, 8 + header_len


def metadata(path: str) -> dict:
    """The provenance strings a file carries in its header."""
    return dict(read_header(path)[0].get("__metadata__") or {})


def tensor_names(header: dict) -> list[str]:
    return [k for k in header if k != "__metadata__"]


def read_tensor(path: str, name: str | None = None) -> np.ndarray:
    """One tensor (``name``; may be omitted when the file holds one), with offsets checked against its
    shape and the file's size. BF16 becomes float32."""
    header, data_start = read_header(path)
    tensors = tensor_names(header)
    if name is None:
        if len(tensors) != 1:
            raise ValueError(f"{path}: holds {len(tensors)} tensors ({', '.join(sorted(tensors)) or 'none'}); "
                             "pass name= to pick one")
        name = tensors[0]
    if name not in tensors:
        raise ValueError(f"{path}: no tensor {name!r}; it holds {', '.join(sorted(tensors)) or 'none'}")
    info = header[name]
    try:
        code, shape, (begin, end) = info["dtype"], [int(n) for n in info["shape"]], info["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: tensor {name!r} lacks dtype, shape or data_offsets") from None
    if code not in DTYPES:
        raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {code}; allowed: {', '.join(DTYPES)}")
    dtype = np.dtype(DTYPES[code])
    count = int(np.prod(shape, dtype=np.int64))
    size = os.path.getsize(path)
    if not 0 <= begin <= end or end - begin != count * dtype.itemsize or data_start + end > size:
        raise ValueError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] do not match shape {shape} "
                         f"of {code} within a {size - data_start}-byte data buffer")
    flat = np.fromfile(path, dtype=dtype, count=count, offset=data_start + begin)
    if code == "BF16":
        flat = _bf16(flat)
    return flat.reshape(shape)


def _bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift the 16 bits up and reinterpret."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write float32/float64/int64 arrays atomically (temp file, then rename): no reader sees half a file."""
    path = Path(path)
    header, offset, blobs = {"__metadata__": {k: str(v) for k, v in meta.items()}}, 0, []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        blob = array.tobytes()
        header[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data buffer starts 8-byte aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for blob in blobs:
            fh.write(blob)
    os.replace(tmp, path)
    return path
