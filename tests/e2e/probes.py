"""Waiting for a gateway started by a test (beside the stack's own) to answer."""

import httpx

from tests.support.eventually import eventually


async def status_of(client: httpx.AsyncClient, path: str) -> int:
    """The status PATH answers with; 0 while nothing listens on the port yet."""
    try:
        return (await client.get(path)).status_code
    except httpx.TransportError:
        return 0


async def wait_until_up(url: str, path: str = "/api/public/ready") -> None:
    """Until the gateway at URL answers PATH with a 200 (30 s at most)."""
    async with httpx.AsyncClient(base_url=url) as client:
        await eventually(lambda: status_of(client, path), lambda status: status == 200, timeout=30)
