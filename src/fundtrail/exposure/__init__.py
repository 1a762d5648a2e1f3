"""Exposure: what share of an address's funds came from (or went to) risky sources within N hops.

``sources`` finds the risk groups (sanctioned entities with their listing windows, mixers, darknet markets,
ransomware, scams, incidents); ``utxo`` and ``evm`` propagate all of them at once over the trace kernels
(haircut, stopping at services); ``index`` assembles, versions and loads the result; ``profile`` answers
"what is this address exposed to" from a loaded index.
"""

from fundtrail.exposure.index import ExposureIndex, build_index, input_digest, load_index

__all__ = ["ExposureIndex", "build_index", "input_digest", "load_index"]
