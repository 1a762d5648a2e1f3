"""Frozen, typed records and chain parameters. Imports nothing from the rest of fundtrail but errors."""
