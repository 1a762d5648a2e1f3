"""fundtrail: open-source blockchain forensics."""

__version__ = "0.1.0"
