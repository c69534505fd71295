"""A second MinIO server with root credentials of its own: the customer's bucket of the
blob-storage export tests, started from the binary scripts/engines.sh builds (.dev/bin/minio) on
a free port and a directory of the test's own. `restart` brings it back on the same data with
other credentials, so what the export saved stops being accepted."""

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from tests.support.devenv import ROOT

BINARY = ROOT / ".dev" / "bin" / "minio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SecondMinio:
    directory: Path
    port: int = field(default_factory=_free_port)
    access_key: str = field(default_factory=lambda: f"export-{secrets.token_hex(4)}")
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
        }
        self.process = subprocess.Popen(
            [str(BINARY), "server", str(self.directory), "--quiet",
             "--address", f"127.0.0.1:{self.port}",
             "--console-address", f"127.0.0.1:{_free_port()}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.endpoint}/minio/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the second MinIO did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None

    def restart(self, *, access_key: str, secret_key: str) -> None:
        self.stop()
        self.access_key, self.secret_key = access_key, secret_key
        self.start()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = f"export-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of the bucket, by key."""
        client = self.client()
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]
        return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


@contextmanager
def second_minio(directory: Path) -> Iterator[SecondMinio]:
    server = SecondMinio(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
