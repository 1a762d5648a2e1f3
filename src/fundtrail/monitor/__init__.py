"""Monitoring: following the chain tip, watches, re-screening, alerts and the webhook outbox.

``db`` everywhere is the service database (``service.store.Store``: ``execute``, ``many``, ``dialect``),
passed in by the edge that owns it; the tables come from the service's migration 002.
"""
