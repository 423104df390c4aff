"""CLI tools beside `justice run` find the dev stack's S3 from the state dir."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from justice.devstack.stack import S3Credentials, with_dev_s3
from justice.platform.config import Settings


def test_the_dev_stack_credentials_are_used_when_settings_name_no_s3(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, dev_s3_port=18999)
    assert with_dev_s3(settings) == settings  # no dev stack ran here: unchanged
    made = S3Credentials.load_or_create(tmp_path / "s3" / "credentials.json")
    found = with_dev_s3(settings)
    assert found.evidence.s3_endpoint == "127.0.0.1:18999"
    assert found.evidence.s3_access_key == made.access_key
    assert isinstance(found.evidence.s3_secret_key, SecretStr)
    assert found.evidence.s3_secret_key.get_secret_value() == made.secret_key


def test_configured_s3_wins(tmp_path: Path) -> None:
    S3Credentials.load_or_create(tmp_path / "s3" / "credentials.json")
    settings = Settings(
        state_dir=tmp_path,
        evidence={"s3_endpoint": "s3.example:9000", "s3_access_key": "k", "s3_secret_key": "s"},
    )
    assert with_dev_s3(settings) == settings
