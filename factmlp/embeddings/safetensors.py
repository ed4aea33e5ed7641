"""The safetensors file format, read and written here (no dependency on the safetensors package).

A file is a u64 little-endian header length N, N bytes of JSON, then the raw data buffer. The JSON
maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the buffer),
plus an optional "__metadata__" mapping of strings (a capture's provenance).
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np

from orchestrator.badfile import BadFile, check_json_depth, is_count

# safetensors dtype codes → little-endian numpy dtypes (BF16 is widened by hand, see _bf16).
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}
_CODES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}  # what ``write`` writes
MAX_HEADER = 100 * 1024 * 1024
MAX_TENSORS = 10_000  # a capture holds 2
MAX_DIMS = 8
MAX_DIM_SIZE = 2 ** 40  # beyond any table (and numpy's reshape)


def read_header(path: str) -> tuple[dict, int]:
    """The header, checked against the format (``check_header``), and the offset of the data buffer;
    ``BadFile('<path>: ...')`` for any defect, before a value of it is used."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise BadFile(path, f"too short for a safetensors file ({size} bytes)")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > min(size - 8, MAX_HEADER):
                raise BadFile(path, f"safetensors header length {header_len} exceeds the file ({size} bytes)"
                                    + (f" or {MAX_HEADER} bytes" if header_len > MAX_HEADER else ""))
            text = fh.read(header_len)
    except OSError as err:
        raise BadFile(path, f"cannot read the file ({err.strerror or err})") from None
    check_json_depth(path, text)
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:  # ValueError: bad JSON, or an integer of > 4300 digits
        raise BadFile(path, f"safetensors header is not valid JSON ({err})") from None
    check_header(path, header, size - 8 - header_len)
    return header, 8 + header_len


def check_header(path: str, header, buffer: int) -> None:
    """The safetensors schema: an object of tensors {dtype, shape, data_offsets} whose bytes lie inside the
    ``buffer``-byte data buffer and match their shape, plus an optional ``__metadata__`` of strings."""
    if not isinstance(header, dict):
        raise BadFile(path, f"safetensors header is a JSON {type(header).__name__}; allowed: an object of tensors")
    if len(header) > MAX_TENSORS:
        raise BadFile(path, f"safetensors header lists {len(header)} entries; allowed: at most {MAX_TENSORS}")
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None and not (isinstance(info, dict)
                                         and all(isinstance(v, str) for v in info.values())):
                raise BadFile(path, "__metadata__ is not a mapping of strings; allowed: {\"key\": \"text\", ...}")
            continue
        _check_tensor(path, name, info, buffer)


def _check_tensor(path: str, name: str, info, buffer: int) -> None:
    what = f"tensor {name[:80]!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise BadFile(path, f"{what} lacks dtype, shape or data_offsets; allowed: exactly those three keys")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        shown = code if isinstance(code, str) and code.isprintable() else repr(code)
        raise BadFile(path, f"{what} has unsupported dtype {shown[:40]}; allowed: {', '.join(DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(is_count(n) and n < MAX_DIM_SIZE for n in shape):
        raise BadFile(path, f"{what} has shape {str(shape)[:60]}; allowed: a list of at most {MAX_DIMS} "
                            f"integers in [0, 2^40)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_count(n) for n in offsets)):
        raise BadFile(path, f"{what} has data_offsets {str(offsets)[:60]}; allowed: [begin, end], integers >= 0")
    begin, end = offsets
    nbytes = math.prod(shape) * np.dtype(DTYPES[code]).itemsize  # Python ints: no overflow
    if not begin <= end <= buffer or end - begin != nbytes:
        raise BadFile(path, f"{what} data_offsets [{begin}, {end}] do not match shape {shape} of {code} "
                            f"within a {buffer}-byte data buffer")


def metadata(path: str) -> dict:
    """The provenance strings a file carries in its header."""
    return dict(read_header(path)[0].get("__metadata__") or {})


def tensor_names(header: dict) -> list[str]:
    return [k for k in header if k != "__metadata__"]


def read_tensor(path: str, name: str | None = None) -> np.ndarray:
    """One tensor (``name``; may be omitted when the file holds one), its header checked against the
    format and the file's size first. BF16 becomes float32."""
    header, data_start = read_header(path)
    tensors = tensor_names(header)
    if name is None:
        if len(tensors) != 1:
            raise BadFile(path, f"holds {len(tensors)} tensors ({', '.join(sorted(tensors)) or 'none'}); "
                                "pass name= to pick one")
        name = tensors[0]
    if name not in tensors:
        raise BadFile(path, f"no tensor {name!r}; it holds {', '.join(sorted(tensors)) or 'none'}")
    info = header[name]
    code, shape, (begin, _) = info["dtype"], info["shape"], info["data_offsets"]
    dtype = np.dtype(DTYPES[code])
    flat = np.fromfile(path, dtype=dtype, count=math.prod(shape), offset=data_start + begin)
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
