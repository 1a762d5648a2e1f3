"""Webhook signatures: ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` (docs/service.md)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Fundtrail-Signature"
EVENT_HEADER = "X-Fundtrail-Event"
DELIVERY_HEADER = "X-Fundtrail-Delivery"
TIMESTAMP_HEADER = "X-Fundtrail-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def headers(secret: str, event: str, delivery_id: str, timestamp: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", EVENT_HEADER: event, DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body),
            "User-Agent": "fundtrail-webhooks/1"}
