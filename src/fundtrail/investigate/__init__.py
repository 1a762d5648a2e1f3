"""What the investigation UI and the /v1 exploration endpoints ask of the workspace.

``search`` (one box: address, transaction, cluster id, entity, incident, on any chain), ``activity`` (an
address: totals, balance over time, transactions and counterparties, paged in SQL), ``clusters`` (members and
why they were merged, paged), ``txs`` (one transaction), ``graph`` (expanding a node one hop, following seeds
to their endpoints, on the trace service), ``usertags`` (tags people add, written through attribution's CSV
import, and the TagPack export).
"""
