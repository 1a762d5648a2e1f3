"""Bulk ordinary Bitcoin traffic for small and large worlds, generated and serialised by compiled kernels.

A fixed population of background users (``user:b<N>``) each owns up to ``ADDRS`` addresses (P2TR key-path
and P2WSH 1-of-1 scripts, alternating, so every script derives with SHA-256 alone) and at most ``SLOTS``
unspent coins. Each transaction spends one or two coins of one user (two coins of the same user: a co-spend
the truth records in a per-user union-find), pays another user, and returns change (to a fresh address, or
reusing one once the user has ``ADDRS``). Coins live in fixed arrays, so memory stays flat however many
blocks are written; transactions are serialised straight into a per-block buffer with their txids and
wtxids (double SHA-256 in the kernels) and never kept.

Modules: ``hashing`` (SHA-256 inside the kernels: OpenSSL through ctypes or numba; merkle roots),
``scripts`` (the users' addresses), ``blocks`` (the block generator kernel), ``economy`` (the
:class:`Background` of one world and :func:`attach_background`).
"""

from fundtrail.simulate.background.blocks import ADDRS, SLOTS
from fundtrail.simulate.background.economy import Background, attach_background
from fundtrail.simulate.background.scripts import scripts_of

__all__ = ["ADDRS", "SLOTS", "Background", "attach_background", "scripts_of"]
