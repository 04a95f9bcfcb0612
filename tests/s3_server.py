"""A real S3-protocol server on 127.0.0.1 for the object-storage tests: moto's standalone server
(``python -m moto.server``), as s3fs and pandas test themselves, started in its own process and
killed at the end.

Clients find it the way they find a real endpoint: ``AWS_ENDPOINT_URL`` and the usual credential
variables in the environment (:meth:`S3Server.env`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

BUCKET = "fusioncast-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    def __init__(self, *, deny_everyone: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = {**os.environ}
        if deny_everyone:  # moto checks signatures against its own (empty) IAM: every key denied
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)

    def env(self) -> dict[str, str]:
        """What a client of this server needs in its environment (dummy credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "fusioncast-test-key",
            "AWS_SECRET_ACCESS_KEY": "fusioncast-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def create_bucket(self, name: str = BUCKET) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, **_credentials(self.env())).create_bucket(
            Bucket=name
        )
        return name

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _credentials(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block (s3fs file systems cached with
    other settings are dropped on both sides)."""
    from s3fs import S3FileSystem

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    S3FileSystem.clear_instance_cache()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        S3FileSystem.clear_instance_cache()
