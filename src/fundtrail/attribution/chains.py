"""Asset codes of tag sources -> chain names, and address validation for every chain we can check.

OFAC lists addresses by asset code (``XBT``, ``ETH``, ``USDT`` …), GraphSense by ``currency``. Codes of
tokens that live on several chains (USDT, USDC) are placed by the address's form: 0x -> ethereum, T… ->
tron, a Bitcoin address -> bitcoin (Omni). Chains without a validator here keep the address as written and
say so in the tag's note.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from fundtrail.errors import AddressError
from fundtrail.model import address as A
from fundtrail.model.chain import BITCOIN_NETWORKS

EVM_CHAINS: frozenset[str] = frozenset({
    "ethereum", "arbitrum", "optimism", "bsc", "polygon", "avalanche", "base", "ethereum_classic",
    "fantom", "gnosis", "sepolia", "holesky", "anvil", "simeth",
})

#: asset / currency code (upper case) -> chain name
ASSET_CHAIN: dict[str, str] = {
    "XBT": "bitcoin", "BTC": "bitcoin", "OMNI": "bitcoin",
    "ETH": "ethereum", "ERC20": "ethereum", "WETH": "ethereum", "DAI": "ethereum",
    "ARB": "arbitrum", "BSC": "bsc", "BNB": "bsc", "BEP20": "bsc", "MATIC": "polygon", "POL": "polygon",
    "AVAX": "avalanche", "OP": "optimism", "ETC": "ethereum_classic", "FTM": "fantom",
    "LTC": "litecoin", "BCH": "bitcoin_cash", "BSV": "bitcoin_sv", "BTG": "bitcoin_gold", "DASH": "dash",
    "ZEC": "zcash", "XMR": "monero", "TRX": "tron", "XRP": "ripple", "RIPPLE": "ripple", "XVG": "verge",
    "DOGE": "dogecoin", "SOL": "solana", "EOS": "eos", "BEP2": "bnb_beacon", "ADA": "cardano",
    "DOT": "polkadot", "ATOM": "cosmos", "XLM": "stellar", "ALGO": "algorand", "XTZ": "tezos",
}

#: codes whose chain depends on the address's form
MULTICHAIN_TOKENS: frozenset[str] = frozenset({"USDT", "USDC", "TUSD", "BUSD", "USDP"})

# base58check version bytes per chain (p2pkh-like, p2sh-like), and bech32 hrps
_B58_VERSIONS: dict[str, frozenset[int]] = {
    "litecoin": frozenset({0x30, 0x32, 0x05}),
    "dogecoin": frozenset({0x1E, 0x16}),
    "dash": frozenset({0x4C, 0x10}),
    "bitcoin_sv": frozenset({0x00, 0x05}),
    "bitcoin_cash": frozenset({0x00, 0x05}),
    "bitcoin_gold": frozenset({0x26, 0x17}),
    "verge": frozenset({0x1E, 0x21}),
    "tron": frozenset({0x41}),
}
_BECH32_HRP = {"litecoin": "ltc", "bitcoin_gold": "btg"}
_ZCASH_PREFIXES = {b"\x1c\xb8", b"\x1c\xbd"}  # t1 (p2pkh), t3 (p2sh)
_RIPPLE_ALPHABET = "rpshnaf39wBUDNEGHJKLM4PQRST7VWXYZ2bcdeCg65jkm8oFqi1tuvAxyz"
_MONERO_NET = {0x12, 0x13, 0x2A}  # standard, integrated, subaddress (mainnet)

# the chains validate() can check
VALIDATED_CHAINS: frozenset[str] = frozenset(
    set(EVM_CHAINS) | {n.chain for n in BITCOIN_NETWORKS.values()} | set(_B58_VERSIONS)
    | {"zcash", "ripple", "monero"})


def chain_for_asset(code: str, address: str | None = None) -> str:
    """The chain an asset code's addresses live on (multi-chain tokens: by the address's form)."""
    c = code.strip().upper()
    if c in MULTICHAIN_TOKENS and address is not None:
        return guess_chain(address) or c.lower()  # a form we cannot place: kept, not validated
    if c in ASSET_CHAIN:
        return ASSET_CHAIN[c]
    return re.sub(r"[^a-z0-9_]+", "_", code.strip().lower()) or "unknown"


def guess_chain(address: str) -> str | None:
    """The chain an address's form belongs to, trying the common ones in order; None when none fits."""
    a = address.strip()
    for chain in ("ethereum", "bitcoin", "tron", "litecoin", "dogecoin", "dash", "zcash", "ripple", "monero",
                  "bitcoin_cash"):
        try:
            validate(chain, a)
            return chain
        except AddressError:
            continue
    return None


@dataclass(frozen=True, slots=True)
class Checked:
    address: str  # as stored
    validated: bool  # False: the chain has no validator here; stored as written


def validate(chain: str, text: str) -> str:
    """Validate ``text`` for ``chain``; return its stored form. Raises AddressError; unknown chains pass."""
    return check(chain, text).address


def check(chain: str, text: str) -> Checked:
    t = text.strip()
    if not t:
        raise AddressError("empty address", address=text, chain=chain)
    if chain in EVM_CHAINS:
        e = _evm(t, chain)
        return Checked(e, True)
    for net in BITCOIN_NETWORKS.values():
        if net.chain == chain:
            if t[:len(net.hrp) + 1].lower() == net.hrp + "1" and fast_segwit_ok(t, net.hrp):
                return Checked(t.lower(), True)  # the common case, checked quickly; else the full path
            return Checked(A.normalize_bitcoin(t, net), True)
    if chain == "bitcoin_cash" and not t.startswith(("1", "3")):
        return Checked(_cashaddr(t, chain), True)
    if chain in _BECH32_HRP and t.lower().startswith(_BECH32_HRP[chain] + "1"):
        try:
            hrp, _, _ = A.segwit_decode(t)
        except ValueError as e:
            raise AddressError(str(e), address=text, chain=chain) from None
        return Checked(t.lower(), True)
    if chain in _B58_VERSIONS:
        try:
            version, payload = A.b58check_decode(t)
        except ValueError as e:
            raise AddressError(str(e), address=text, chain=chain) from None
        if len(payload) != 20 or version not in _B58_VERSIONS[chain]:
            raise AddressError(f"base58check version {version:#04x} / length {len(payload)} is not a {chain} "
                               "address", address=text, chain=chain)
        return Checked(t, True)
    if chain == "zcash":
        if t.startswith(("zs1", "u1")):
            return Checked(t, False)  # shielded / unified: not checked here
        try:
            raw = A.b58decode(t)
        except ValueError as e:
            raise AddressError(str(e), address=text, chain=chain) from None
        if len(raw) != 26 or A.sha256d(raw[:-4])[:4] != raw[-4:] or raw[:2] not in _ZCASH_PREFIXES:
            raise AddressError("not a Zcash transparent address", address=text, chain=chain)
        return Checked(t, True)
    if chain == "ripple":
        raw = _b58decode_alpha(t, _RIPPLE_ALPHABET, text, chain)
        if len(raw) != 25 or raw[0] != 0 or A.sha256d(raw[:-4])[:4] != raw[-4:]:
            raise AddressError("not an XRP Ledger account address", address=text, chain=chain)
        return Checked(t, True)
    if chain == "monero":
        _monero(t, text)
        return Checked(t, True)
    return Checked(t, False)


_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_TOP = [0] * 32
for _top in range(32):
    for _i in range(5):
        if (_top >> _i) & 1:
            _TOP[_top] ^= _GEN[_i]
_CHARSET_INDEX = {c: i for i, c in enumerate(A.BECH32_CHARSET)}


def fast_segwit_ok(text: str, hrp: str) -> bool:
    """True when ``text`` is a valid segwit address for ``hrp`` (BIP-173/350); a table-driven checksum, about
    five times faster than the reference loop. False means "not proven valid": callers then take the
    reference path, which says why."""
    s = text.lower()
    if s != text and text.upper() != text:
        return False
    if len(s) > 90 or len(s) < len(hrp) + 8 or s[len(hrp)] != "1":
        return False
    idx = _CHARSET_INDEX
    try:
        data = [idx[c] for c in s[len(hrp) + 1:]]
    except KeyError:
        return False
    chk = 1
    for v in [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp] + data:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ _TOP[top]
    ver = data[0]
    if ver > 16 or chk != (1 if ver == 0 else 0x2BC830A3):
        return False
    nbits = (len(data) - 7) * 5
    plen = nbits // 8
    if nbits % 8 >= 5 or not 2 <= plen <= 40 or (ver == 0 and plen not in (20, 32)):
        return False
    # padding bits must be zero
    pad = nbits % 8
    return not (pad and data[-7] & ((1 << pad) - 1))


def _evm(t: str, chain: str) -> str:
    try:
        return A.normalize_evm(t)
    except AddressError as e:
        raise AddressError(e.message.split(": ", 1)[-1], address=t, chain=chain) from None


def _b58decode_alpha(t: str, alphabet: str, text: str, chain: str) -> bytes:
    idx = {c: i for i, c in enumerate(alphabet)}
    n = 0
    for c in t:
        if c not in idx:
            raise AddressError(f"character {c!r} is not in the alphabet", address=text, chain=chain)
        n = n * 58 + idx[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(t) - len(t.lstrip(alphabet[0]))
    return b"\0" * pad + body


_CASH_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _cash_polymod(values: list[int]) -> int:
    gens = (0x98F2BC8E61, 0x79B76D99E2, 0xF33E5FB3C4, 0xAE2EABE2A8, 0x1E4F43E470)
    c = 1
    for d in values:
        c0 = c >> 35
        c = ((c & 0x07FFFFFFFF) << 5) ^ d
        for i in range(5):
            if (c0 >> i) & 1:
                c ^= gens[i]
    return c ^ 1


def _cashaddr(t: str, chain: str) -> str:
    s = t.lower()
    prefix, _, payload = s.rpartition(":")
    prefix = prefix or "bitcoincash"
    try:
        data = [_CASH_CHARSET.index(c) for c in payload]
    except ValueError:
        raise AddressError("character not in the cashaddr alphabet", address=t, chain=chain) from None
    if t != t.lower() and t != t.upper():
        raise AddressError("mixed case", address=t, chain=chain)
    if len(data) < 9 or _cash_polymod([ord(c) & 31 for c in prefix] + [0] + data) != 0:
        raise AddressError("cashaddr checksum mismatch", address=t, chain=chain)
    return payload


_XMR_BLOCK_SIZES = [0, 2, 3, 5, 6, 7, 9, 10, 11]


def _monero(t: str, text: str) -> None:
    """Monero's base58 (8-byte blocks, 11 characters each) with a keccak-256 checksum."""
    raw = bytearray()
    full, rest = divmod(len(t), 11)
    if rest not in _XMR_BLOCK_SIZES:
        raise AddressError("not a Monero address (length)", address=text, chain="monero")
    try:
        for i in range(full + (1 if rest else 0)):
            block = t[i * 11:(i + 1) * 11]
            n = 0
            for c in block:
                n = n * 58 + A._B58_INDEX[c]
            size = 8 if len(block) == 11 else _XMR_BLOCK_SIZES.index(len(block))
            raw += n.to_bytes(size, "big")
    except (KeyError, OverflowError):
        raise AddressError("not a Monero address (encoding)", address=text, chain="monero") from None
    if len(raw) < 69 or raw[0] not in _MONERO_NET or A.keccak256(bytes(raw[:-4]))[:4] != bytes(raw[-4:]):
        raise AddressError("not a Monero address (network byte or checksum)", address=text, chain="monero")


def sha256(data: bytes) -> bytes:  # pragma: no cover - convenience
    return hashlib.sha256(data).digest()
