"""The KYT screening service: an ASGI application over the workspace (see docs/service.md).

``screening`` (the screening service both the CLI and the API call), ``runtime`` (the loaded exposure
index, kept current), ``store`` (SQLite | PostgreSQL state with migrations), ``auth`` (keys and roles),
``app`` (the application factory) and ``routes/`` (one router per resource).
"""
