"""The personal-data reads list names real methods, and reads only."""

from __future__ import annotations

import importlib
import pkgutil

import justice
from justice.audit.personal_data import PERSONAL_DATA_READS


def _declared_methods() -> set[str]:
    methods = set()
    for module in pkgutil.walk_packages(justice.__path__, "justice."):
        if module.name.endswith("_pb2") and ".v1." in module.name:
            for service in importlib.import_module(
                module.name
            ).DESCRIPTOR.services_by_name.values():
                methods |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    return methods


def test_every_listed_read_is_a_declared_method() -> None:
    assert not PERSONAL_DATA_READS - _declared_methods()


def test_no_write_is_listed() -> None:
    writes = ("Create", "Update", "Sign", "Submit", "Amend", "Upload", "Grant", "Revoke", "Delete")
    assert not [m for m in PERSONAL_DATA_READS if m.rsplit("/", 1)[1].startswith(writes)]
