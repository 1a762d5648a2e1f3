"""The EVM standards the runtime reads: the Solidity ABI codec, and the event signatures that ingestion and
tracing decode (ERC-20 ``Transfer``; the DEX ``Swap`` of Uniswap-v2-style pairs; the bridge's
``BridgeDeposit`` / ``BridgeRelease``; the Tornado-style mixer pool's ``Deposit`` / ``Withdrawal``).

Codec: static types uint<N>, int<N>, address, bool, bytes<N>; dynamic bytes, string, T[] (of static T).
Values: ints for integers, 0x-hex strings for addresses, bytes for bytes/bytesN, str for string.
An event's topic0 is the keccak-256 of its canonical signature; a function's selector its first 4 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fundtrail.errors import DecodeError, UsageError
from fundtrail.model.address import keccak256


def selector(signature: str) -> bytes:
    """The 4-byte function selector of e.g. ``transfer(address,uint256)``."""
    return keccak256(signature.encode())[:4]


def event_topic(signature: str) -> str:
    """topic0 of an event signature, as 0x hex."""
    return "0x" + keccak256(signature.encode()).hex()


# event signatures (topic0 = event_topic(signature))
TRANSFER_EVENT = "Transfer(address,address,uint256)"  # ERC-20 (indexed from, to; data: value)
SWAP_EVENT = "Swap(address,uint256,uint256,uint256,uint256,address)"  # Uniswap-v2 pair
BRIDGE_DEPOSIT_EVENT = "BridgeDeposit(uint256,address,address,uint256,string,string)"
BRIDGE_RELEASE_EVENT = "BridgeRelease(uint256,address,address,uint256,string,string)"
MIXER_DEPOSIT_EVENT = "Deposit(bytes32,uint32,uint256)"  # Tornado-style pool
MIXER_WITHDRAWAL_EVENT = "Withdrawal(address,bytes32,address,uint256)"

TRANSFER = event_topic(TRANSFER_EVENT)
SWAP = event_topic(SWAP_EVENT)
BRIDGE_DEPOSIT = event_topic(BRIDGE_DEPOSIT_EVENT)
BRIDGE_RELEASE = event_topic(BRIDGE_RELEASE_EVENT)
MIXER_DEPOSIT = event_topic(MIXER_DEPOSIT_EVENT)
MIXER_WITHDRAWAL = event_topic(MIXER_WITHDRAWAL_EVENT)

# the ERC-20 metadata calls (optional in the standard: real tokens omit them or answer bytes32)
ERC20_SYMBOL = "0x" + selector("symbol()").hex()
ERC20_NAME = "0x" + selector("name()").hex()
ERC20_DECIMALS = "0x" + selector("decimals()").hex()


def _is_dynamic(t: str) -> bool:
    return t in ("bytes", "string") or t.endswith("[]")


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _encode_static(t: str, v: Any) -> bytes:
    if t == "address":
        if isinstance(v, bytes):
            raw = v
        else:
            raw = bytes.fromhex(str(v).removeprefix("0x"))
        if len(raw) != 20:
            raise UsageError(f"ABI: not a 20-byte address: {v!r}")
        return b"\0" * 12 + raw
    if t == "bool":
        return _word(1 if v else 0)
    if t.startswith("uint"):
        v = int(v)
        if v < 0 or v >= 1 << int(t[4:] or 256):
            raise UsageError(f"ABI: {v} out of range for {t}")
        return _word(v)
    if t.startswith("int"):
        v = int(v)
        return _word(v % (1 << 256))
    if t.startswith("bytes"):
        n = int(t[5:])
        raw = bytes.fromhex(v.removeprefix("0x")) if isinstance(v, str) else bytes(v)
        if len(raw) > n:
            raise UsageError(f"ABI: {len(raw)} bytes do not fit {t}")
        return raw.ljust(32, b"\0")
    raise UsageError(f"ABI: unsupported type {t}")


def _encode_dynamic(t: str, v: Any) -> bytes:
    if t in ("bytes", "string"):
        raw = v.encode() if isinstance(v, str) and t == "string" else (
            bytes.fromhex(v.removeprefix("0x")) if isinstance(v, str) else bytes(v))
        pad = (-len(raw)) % 32
        return _word(len(raw)) + raw + b"\0" * pad
    inner = t[:-2]
    return _word(len(v)) + encode([inner] * len(v), list(v))


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    if len(types) != len(values):
        raise UsageError(f"ABI: {len(types)} types but {len(values)} values")
    head_len = 32 * len(types)
    heads: list[bytes] = []
    tails: list[bytes] = []
    tail_len = 0
    for t, v in zip(types, values, strict=True):
        if _is_dynamic(t):
            heads.append(_word(head_len + tail_len))
            enc = _encode_dynamic(t, v)
            tails.append(enc)
            tail_len += len(enc)
        else:
            heads.append(_encode_static(t, v))
    return b"".join(heads) + b"".join(tails)


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata for ``name(type,...)`` with ``args``."""
    types = _arg_types(signature)
    return selector(signature) + encode(types, args)


def _arg_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1 : signature.rindex(")")]
    return [t.strip() for t in inner.split(",")] if inner.strip() else []


def _decode_static(t: str, w: bytes) -> Any:
    if t == "address":
        return "0x" + w[12:].hex()
    if t == "bool":
        return int.from_bytes(w, "big") != 0
    if t.startswith("uint"):
        return int.from_bytes(w, "big")
    if t.startswith("int"):
        return int.from_bytes(w, "big", signed=True)
    if t.startswith("bytes"):
        return w[: int(t[5:])]
    raise UsageError(f"ABI: unsupported type {t}")


def decode(types: Sequence[str], data: bytes) -> list[Any]:
    """Decode ABI data; raises DecodeError on data too short or offsets out of range."""
    out: list[Any] = []
    try:
        for i, t in enumerate(types):
            w = data[32 * i : 32 * i + 32]
            if len(w) != 32:
                raise DecodeError(f"ABI data too short for {t} at word {i}", field=t)
            if not _is_dynamic(t):
                out.append(_decode_static(t, w))
                continue
            off = int.from_bytes(w, "big")
            if off + 32 > len(data):
                raise DecodeError(f"ABI offset {off} beyond data ({len(data)} bytes)", field=t)
            n = int.from_bytes(data[off : off + 32], "big")
            if t in ("bytes", "string"):
                if off + 32 + n > len(data):
                    raise DecodeError(f"ABI length {n} beyond data", field=t)
                raw = data[off + 32 : off + 32 + n]
                out.append(raw.decode("utf-8", "replace") if t == "string" else raw)
            else:
                out.append(decode([t[:-2]] * n, data[off + 32 :]))
    except DecodeError:
        raise
    except (ValueError, OverflowError) as e:
        raise DecodeError(f"ABI data does not decode as {list(types)}: {e}") from e
    return out


def function_signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical(i) for i in entry['inputs'])})"


def _canonical(inp: dict[str, Any]) -> str:
    return str(inp["type"])
