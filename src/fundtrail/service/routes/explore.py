"""Exploration for investigators: search, address activity and counterparties, cluster members, transactions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from fundtrail.investigate import activity as A
from fundtrail.investigate import clusters as K
from fundtrail.investigate import peels as PEEL
from fundtrail.investigate import search as S
from fundtrail.investigate import txs as X
from fundtrail.service.deps import Caller, require, runtime

router = APIRouter(tags=["explore"])
ChainP = Path(max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
Page = Query(0, ge=0, le=10**7)
Size = Query(50, ge=1, le=500)


@router.get("/v1/search", summary="One box: address, transaction, cluster id, entity or incident, any chain")
def search(q: str = Query(min_length=1, max_length=200), _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return {"q": q, "hits": S.search(rt.ws, q)}


@router.get("/v1/addresses/{chain}/{address}/activity", summary="Totals, balance by month, a page of transactions",
            responses={404: {}})
def activity(chain: str = ChainP, address: str = Path(max_length=128), page: int = Page, size: int = Size,
             _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return A.activity(rt.ws, chain, address, page=page, size=size)


@router.get("/v1/addresses/{chain}/{address}/counterparties", summary="Who paid it and whom it paid (a page)",
            responses={404: {}})
def counterparties(chain: str = ChainP, address: str = Path(max_length=128), page: int = Page, size: int = Size,
                   _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return A.counterparties(rt.ws, chain, address, page=page, size=size)


@router.get("/v1/addresses/{chain}/{address}/peel-chains",
            summary="Peel chains the address takes part in (continuing output, peel, or spent into one)",
            responses={404: {}})
def peel_chains(chain: str = ChainP, address: str = Path(max_length=128), _c: Caller = require("viewer"),
                rt=Depends(runtime)) -> dict:
    return PEEL.address_peel_chains(rt.ws, chain, address)


@router.get("/v1/clusters/{chain}/{cluster_id}/members", summary="A page of members and of the merges (why)",
            responses={404: {}})
def members(chain: str = ChainP, cluster_id: int = Path(ge=0, le=2**62), page: int = Page, size: int = Size,
            merges_page: int = Page, _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return K.cluster_page(rt.ws, chain, cluster_id, page=page, size=size, merges_page=merges_page)


@router.get("/v1/transactions/{chain}/{txid}", summary="A transaction: inputs and outputs or value movements",
            responses={404: {}})
def transaction(chain: str = ChainP, txid: str = Path(min_length=64, max_length=66, pattern=r"^(0x)?[0-9a-fA-F]{64}$"),
                _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return X.transaction(rt.ws, chain, txid)
