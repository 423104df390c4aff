"""A throwaway Ceph RADOS Gateway on loopback: one monitor, one memstore OSD, one radosgw.

The second S3 implementation the evidence conformance suite runs against (the first is
SeaweedFS): Debian's Ceph 16.2 (`apt-get install radosgw ceph-mon ceph-osd`), the release
an operator reported evidence stored unlocked on. Everything lives under one directory:
config, monitor store, OSD (memstore: nothing is written to disk but logs) and logs.
No authentication inside the cluster (auth none, msgr2 in crc mode); S3 requests are signed
with the keys of a user made with radosgw-admin. Start-up takes about 1.5 s on 2 cores
(15 s with the monitor's default 1 s paxos batching, radosgw creating its pools one change
at a time), stopping about 1 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Self

import urllib3

from justice.devstack.supervised import (
    LOOPBACK,
    ProcessNotReadyError,
    SupervisedProcess,
    free_tcp_ports,
    tcp_port_open,
)

__all__ = ["CEPH_BINARIES", "CephRgw", "missing_ceph_binaries"]

CEPH_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")


def missing_ceph_binaries() -> list[str]:
    return [name for name in CEPH_BINARIES if shutil.which(name) is None]


class _Daemon(SupervisedProcess):
    def __init__(self, cluster: CephRgw, name: str, argv: list[str]) -> None:
        super().__init__(cluster.workdir, stop_grace=10.0)
        self.name = name
        self._cluster = cluster
        self._argv = argv

    def command(self) -> list[str]:
        return [*self._argv, "-f", "-c", str(self._cluster.conf_path)]

    def probe_ready(self) -> bool:
        return self._cluster.probe(self.name)


class CephRgw:
    """mon + OSD + radosgw; `with CephRgw(dir) as rgw:` gives `rgw.endpoint` and its keys."""

    def __init__(self, workdir: Path, *, access_key: str, secret_key: str) -> None:
        missing = missing_ceph_binaries()
        if missing:
            raise ProcessNotReadyError(
                "Ceph is not installed (missing " + ", ".join(missing) + "); "
                "apt-get install radosgw ceph-mon ceph-osd"
            )
        self.workdir = Path(workdir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.mon_port, self.port = free_tcp_ports(2)
        self.fsid = str(uuid.uuid4())
        self._daemons: list[_Daemon] = []

    @property
    def conf_path(self) -> Path:
        return self.workdir / "ceph.conf"

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def __repr__(self) -> str:
        return f"CephRgw(workdir={self.workdir!s}, endpoint={self.endpoint!r})"

    def _ceph(self, *args: str, timeout: float = 30.0) -> str:
        done = subprocess.run(
            ["ceph", "-c", str(self.conf_path), "--connect-timeout", "5", *args],
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.decode()

    def probe(self, daemon: str) -> bool:
        if daemon == "ceph-mon":
            return tcp_port_open(self.mon_port)
        if daemon == "ceph-osd":
            try:
                return bool(json.loads(self._ceph("osd", "stat", "-f", "json"))["num_up_osds"])
            except (subprocess.SubprocessError, ValueError, KeyError):
                return False
        if not tcp_port_open(self.port):
            return False
        pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=2))
        try:
            return pool.request("GET", f"{self.url}/").status < 500
        except urllib3.exceptions.HTTPError:
            return False
        finally:
            pool.clear()

    def _write_conf(self) -> None:
        d = self.workdir
        for sub in ("run", "log", "mon", "osd0", "rgw"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            f"""[global]
fsid = {self.fsid}
mon host = v2:{LOOPBACK}:{self.mon_port}
public addr = {LOOPBACK}
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr1 = false
ms mon client mode = crc
ms client mode = crc
ms mon service mode = crc
ms service mode = crc
ms cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
# The monitor commits every change at once instead of batching them for a second: radosgw
# creates its pools one change at a time.
paxos propose interval = 0.01
paxos min wait = 0.001
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
mon data = {d}/mon
osd data = {d}/osd$id
keyring = {d}/keyring

[client.rgw]
rgw frontends = beast endpoint={LOOPBACK}:{self.port}
rgw data = {d}/rgw
""",
            encoding="utf-8",
        )

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        subprocess.run(argv, capture_output=True, timeout=timeout, check=True)

    def _daemon(self, name: str, *argv: str, timeout: float) -> None:
        daemon = _Daemon(self, name, list(argv))
        self._daemons.append(daemon)
        daemon.start()
        daemon.wait_ready(timeout)

    def start(self) -> None:
        d, conf = self.workdir, str(self.conf_path)
        self._write_conf()
        self._run("ceph-authtool", "--create-keyring", f"{d}/keyring", "--gen-key", "-n", "mon.")
        self._run(
            "monmaptool",
            "--create",
            "--addv",
            "a",
            f"[v2:{LOOPBACK}:{self.mon_port}]",
            "--fsid",
            self.fsid,
            f"{d}/monmap",
        )
        self._run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", f"{d}/monmap")
        self._daemon("ceph-mon", "ceph-mon", "-i", "a", timeout=15)
        osd = self._ceph("osd", "create").strip()
        self._run("ceph-osd", "-c", conf, "-i", osd, "--mkfs")
        self._daemon("ceph-osd", "ceph-osd", "-i", osd, timeout=30)
        self._daemon("radosgw", "radosgw", "-n", "client.rgw", timeout=60)
        self._run(
            "radosgw-admin",
            "-c",
            conf,
            "user",
            "create",
            "--uid=justice-tests",
            "--display-name=justice tests",
            f"--access-key={self.access_key}",
            f"--secret-key={self.secret_key}",
        )

    def stop(self) -> None:
        # The gateway first, the monitor last; each by its own PID.
        for daemon in reversed(self._daemons):
            daemon.stop()
        self._daemons.clear()

    def __enter__(self) -> Self:
        try:
            self.start()
        except subprocess.CalledProcessError as error:
            self.stop()
            output = (error.stderr or b"").decode("utf-8", "replace")[-2000:]
            raise ProcessNotReadyError(f"ceph set-up step failed: {error.cmd}\n{output}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
