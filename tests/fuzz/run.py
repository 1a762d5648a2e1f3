"""Run one fuzz target under atheris (libFuzzer):

    python -m tests.fuzz.run TARGET [CORPUS_DIR ...] [-runs=N] [-max_total_time=S] [libFuzzer options]

Exits 0 when the runs end without a finding; a finding (an exception outside fundtrail's error tree, a
crash, a timeout) is written by libFuzzer as ``crash-*`` / ``timeout-*`` under ``-artifact_prefix``.
libFuzzer's last line, ``Done N runs in S second(s)``, gives the figures.
"""

from __future__ import annotations

import os
import sys

import atheris

# Coverage instrumentation for the interpreted modules; the numba modules (ingest/bitcoin/*, compiled, not
# interpreted: instrumented bytecode does not compile) are left out, their targets are fuzzed blind
NUMBA = ["fundtrail.ingest.bitcoin." + m for m in ("addresses", "blockfiles", "hashing", "parse", "rows", "runs",
                                                    "script", "service", "utxo")]
if os.environ.get("NUMBA_DISABLE_JIT") == "1":  # kernels run as Python: instrumented, and bounds-checked
    NUMBA = []
with atheris.instrument_imports(include=["fundtrail"], exclude=NUMBA):
    import fundtrail.attribution.service  # noqa: F401
    import fundtrail.ingest.bitcoin.blockfiles  # noqa: F401
    import fundtrail.ingest.bitcoin.parse  # noqa: F401
    import fundtrail.ingest.bitcoin.rows  # noqa: F401
    import fundtrail.ingest.bitcoin.script  # noqa: F401
    import fundtrail.ingest.evm.mappers  # noqa: F401
    import fundtrail.model.address  # noqa: F401
    import fundtrail.model.chain  # noqa: F401

from fundtrail.errors import FundtrailError  # noqa: E402
from tests.fuzz.targets import MAX_LEN, TARGETS  # noqa: E402


def main() -> None:
    name = sys.argv[1]
    target = TARGETS[name]

    def one(data: bytes) -> None:
        try:
            target(data)
        except FundtrailError:
            pass

    args = [sys.argv[0], *sys.argv[2:]]
    if not any(a.startswith("-max_len=") for a in args):
        args.append(f"-max_len={MAX_LEN[name]}")
    atheris.Setup(args, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
