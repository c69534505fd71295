"""Prints each service's health and exits non-zero unless all five are SERVING.

The four backends answer the standard gRPC health service, which needs no internal token; the
gateway speaks HTTP, so its readiness route stands in for it (SERVING when it answers 200).
"""

import asyncio
import os
import sys
import urllib.error
import urllib.request

from libs.common.rpc import check_health

BACKENDS = {
    "ingestion": "INGESTION_ADDR",
    "query": "QUERY_ADDR",
    "prompts": "PROMPTS_ADDR",
    "evals": "EVALS_ADDR",
}


def gateway_status(port: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/public/ready", timeout=2):
            return "SERVING"
    except urllib.error.HTTPError:
        return "NOT_SERVING"
    except OSError:
        return "UNREACHABLE"


async def main() -> int:
    statuses = {"gateway": gateway_status(os.environ["GATEWAY_HTTP_PORT"])}
    for name, variable in BACKENDS.items():
        statuses[name] = await check_health(os.environ[variable])
    for name, status in statuses.items():
        print(f"{name:<10} {status}")
    return 0 if all(status == "SERVING" for status in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
