"""Readiness tells the truth: `/ready` fails while a backend the gateway calls is down, and comes
back when it does; neither that answer nor the 503 of a request that needed the backend names an
internal address."""

import re
import signal

import httpx

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

# Hosts and ports of the stack (127.0.0.1:<port>), or anything that looks like one.
ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}|:\d{2,5}\b|ipv4|ipv6|localhost")


async def test_ready_fails_while_a_backend_is_down_and_recovers(stack: Stack) -> None:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, auth=(PUBLIC_KEY, SECRET_KEY)
    ) as client:

        async def ready() -> httpx.Response:
            return await client.get("/api/public/ready")

        await eventually(ready, lambda r: r.status_code == 200, timeout=30)
        ingestion = stack.processes["ingestion"]
        ingestion.send_signal(signal.SIGTERM)
        try:
            down = await eventually(ready, lambda r: r.status_code == 503, timeout=30)
            assert down.json()["status"] == "Backend not serving: ingestion"
            assert not ADDRESS.search(down.text), down.text
            ingestion.wait(timeout=30)

            refused = await client.post("/api/public/ingestion", json={"batch": []})
            assert refused.status_code == 503
            assert refused.json()["error"] == "ServiceUnavailableError"
            assert not ADDRESS.search(refused.text), refused.text
        finally:
            if ingestion.poll() is None:
                ingestion.wait(timeout=30)
            stack.processes["ingestion"] = stack.start("ingestion")
        await eventually(ready, lambda r: r.status_code == 200, timeout=60)
