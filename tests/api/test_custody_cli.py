"""`justice custody ...` against the real server: seize, hand over, verify, export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from google.protobuf import json_format

from justice.app import Application
from justice.devstack.pki import DevPki
from tests.cli_runner import justice
from tests.custody_builders import drugs
from tests.signed_documents import pdf_text, xmlsec1_verify


@pytest.fixture(scope="module", params=["sqlite"])
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # The CLI does not care which database the server uses.
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"


def written(directory: Path, pattern: str) -> bytes:
    return next(directory.glob(pattern)).read_bytes()


async def test_seize_hand_over_verify_and_export(
    application: Application, pki: DevPki, tmp_path: Path
) -> None:
    item = drugs(weight="12.5")
    items = tmp_path / "items.json"
    items.write_text(json.dumps([json_format.MessageToDict(item)]))
    seized = await justice(
        application,
        pki,
        "custody",
        "seize",
        "--case",
        "AN.1/26",
        "--report",
        "PV 1/26",
        "--place",
        "Gent",
        "--ground",
        "Art. 35 Sv.",
        "--items",
        str(items),
        "--person",
        "Marie Dubois",
        "--language",
        "fr",
    )
    assert seized.exit_code == 0, seized.output
    name = re.search(r'"(items/[0-9a-f]{24})"', seized.output)
    seizure = re.search(r'"(seizures/[0-9a-f]{24})"', seized.output)
    assert name, seized.output
    assert seizure, seized.output
    handed = await justice(
        application, pki, "custody", "transfer", name[1], "--to", "custodian-2001"
    )
    assert "IN_TRANSIT" in handed.output, handed.output
    wrong = await justice(application, pki, "--as", "officer-1002", "custody", "accept", name[1])
    assert wrong.exit_code == 1
    assert "PERMISSION_DENIED" in wrong.output
    vault = await justice(
        application,
        pki,
        "--as",
        "custody-supervisor-2101",
        "custody",
        "create-location",
        "gent.r1.a",
        *("--name", "Gent, kluis A", "--unit", "Seized Goods Gent", "--kind", "vault"),
        "--secure",
    )
    assert vault.exit_code == 0, vault.output
    assert '"secure": true' in vault.output
    took = await justice(
        application,
        pki,
        "--as",
        "custodian-2001",
        "custody",
        "accept",
        name[1],
        "--location",
        "locations/gent.r1.a",
    )
    assert took.exit_code == 0, took.output
    sequence = str(json.loads(took.output)["chain_length"])
    signed = await justice(
        application,
        pki,
        "--as",
        "custodian-2001",
        "custody",
        "acceptance",
        name[1],
        *("--sequence", sequence, "--out", str(tmp_path / "acceptance")),
    )
    assert signed.exit_code == 0, signed.output
    assert xmlsec1_verify(written(tmp_path / "acceptance", "*.xml"), pki, tmp_path) == ""
    checked = await justice(
        application, pki, "--as", "custodian-2001", "custody", "verify", name[1]
    )
    assert checked.exit_code == 0, checked.output
    assert '"intact": true' in checked.output
    exported = await justice(
        application,
        pki,
        "--as",
        "custodian-2001",
        "custody",
        "certificate",
        name[1],
        "--out",
        str(tmp_path),
    )
    assert exported.exit_code == 0, exported.output
    certificate = written(tmp_path, "custody-*.xml")
    assert xmlsec1_verify(certificate, pki, tmp_path) == ""
    receipt = await justice(
        application,
        pki,
        "--purpose",
        "receipt for the owner",
        "custody",
        "receipt",
        seizure[1],
        "--out",
        str(tmp_path / "receipt"),
    )
    assert receipt.exit_code == 0, receipt.output
    pdf = written(tmp_path / "receipt", "*.pdf")
    assert "Accusé de réception de saisie" in pdf_text(pdf, tmp_path)
