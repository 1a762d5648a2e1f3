"""Request bodies (validated; a bad field is a 422 naming it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fundtrail.service.screening import MAX_BATCH

Chain = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$", description="Chain name, e.g. bitcoin")
Addr = Field(min_length=1, max_length=128, description="The address as users write it")
Time = Field(default=None, max_length=40, description="ISO 8601 time or YYYY-MM-DD (default: now)")


class ScreenAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: str = Chain
    address: str = Addr
    time: str | None = Time


class ScreenBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ScreenAddress] = Field(min_length=1, max_length=MAX_BATCH)


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: str = Chain
    direction: Literal["received", "sent"]
    address: str = Addr
    counterparty: str | None = Field(default=None, min_length=1, max_length=128)
    txid: str | None = Field(default=None, min_length=1, max_length=100)
    vout: int | None = Field(default=None, ge=0, le=2**31 - 1)
    asset: str = Field(min_length=1, max_length=100)
    amount: str = Field(pattern=r"^[0-9]{1,40}(\.[0-9]{1,40})?$", max_length=81,
                        description="Decimal string in whole units")
    time: str | None = Time
    external_id: str | None = Field(default=None, min_length=1, max_length=200,
                                    description="The caller's own id of the transfer")
    customer_id: str | None = Field(default=None, min_length=1, max_length=200,
                                    description="The caller's id of the customer")


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str = Field(min_length=1, max_length=256 * 1024, description="The policy document (YAML)")
