"""The house's floors, read from the source with `ast`: imports only point down.

Top: cli -> app (the composition root) -> bridges, peers, devstack -> the domains -> exchange,
security, signing -> platform. Imports inside functions and under TYPE_CHECKING count too.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import justice

ROOT = Path(justice.__file__).parent
DOMAINS = frozenset({"reports", "evidence", "access", "audit", "custody", "fines"})
INFRASTRUCTURE = frozenset({"grpc", "sqlalchemy", "sqlmodel", "nats", "minio", "signxml", "lxml"})
# What a domain's use cases never reach: drivers and the platform's adapters. (lxml stays
# allowed: a domain renders its own XML documents.)
ADAPTERS = frozenset(
    {"grpc", "sqlalchemy", "sqlmodel", "nats", "minio"}
    | {f"justice.platform.{name}" for name in ("blobs", "db", "bus", "notify", "server")}
)


def _sources() -> Iterator[tuple[str, Path]]:
    """(dotted module name, path) of every hand-written module; generated code is skipped."""
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "v1" in parts or (parts[0] in ("type", "platform") and "migrations" in parts):
            continue
        yield ".".join(("justice", *parts)).removesuffix(".__init__"), path


def imports_of(path: Path) -> set[str]:
    """Every module the file names in an import; `from a import b` gives a and a.b."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _floor(module: str) -> str:
    """justice.reports.service -> reports; justice.app -> app."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "justice" else ""


@dataclass(frozen=True)
class Edge:
    module: str  # the importing module, e.g. justice.reports.service
    target: str  # what it imports, e.g. justice.exchange.message

    @property
    def here(self) -> str:
        return _floor(self.module)

    @property
    def there(self) -> str:
        return _floor(self.target)

    @property
    def own(self) -> bool:
        """Within the same top-level folder, or generated code (a contract, not a floor)."""
        return self.here == self.there or ".v1" in self.target


RULES: dict[str, Callable[[Edge], bool]] = {
    # platform/ imports nothing of justice but platform/.
    "platform": lambda e: e.here == "platform" and bool(e.there) and not e.own,
    "model": lambda e: e.module.endswith(".model") and e.target.split(".")[0] in INFRASTRUCTURE,
    "exchange": lambda e: e.here == "exchange" and e.there in DOMAINS and not e.own,
    "domains": lambda e: e.here in DOMAINS and e.there in DOMAINS and not e.own,
    "app": lambda e: e.there == "app" and e.here not in ("cli", "app"),
    "bridges": lambda e: e.there == "bridges" and e.here not in ("app", "bridges"),
    "peers": lambda e: e.there == "peers" and e.here not in ("app", "peers"),
}


def _violations(rule: str) -> list[str]:
    edges = (Edge(m, t) for m, path in _sources() for t in imports_of(path))
    return sorted({f"{e.module} imports {e.target}" for e in edges if RULES[rule](e)})


def _is_adapter(target: str) -> bool:
    return any(target == a or target.startswith(f"{a}.") for a in ADAPTERS)


def use_case_modules(domain: str) -> set[str]:
    """The domain's service and every module of its own domain it reaches by importing."""
    paths = dict(_sources())
    seen: set[str] = set()
    todo = [f"justice.{domain}.service"]
    while todo:
        module = todo.pop()
        if module in seen or module not in paths:
            continue
        seen.add(module)
        todo.extend(t for t in imports_of(paths[module]) if _floor(t) == domain and ".v1" not in t)
    return seen


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_a_service_reaches_no_adapter(domain: str) -> None:
    # Ports are Protocols and values of the domain; S3Blobs, Database, the bus and their
    # types stay with the composition root and the stores.
    paths = dict(_sources())
    modules = use_case_modules(domain)
    assert f"justice.{domain}.service" in modules
    reached = sorted(
        f"{m} imports {t}" for m in modules for t in imports_of(paths[m]) if _is_adapter(t)
    )
    assert reached == []


def test_a_store_imports_no_service() -> None:
    # A store implements a port; the values it takes (queries) live with the ports or the
    # model, so the adapter never depends on the use cases above it.
    found = sorted(
        f"{m} imports {t}"
        for m, path in _sources()
        if m.endswith(".store") and _floor(m) in DOMAINS
        for t in imports_of(path)
        if t.startswith(f"justice.{_floor(m)}.service")
    )
    assert found == []


@pytest.mark.parametrize(
    ("rule", "meaning"),
    [
        ("platform", "platform/ imports no domain (nothing of justice but platform/)"),
        ("model", "a model.py imports no grpc, sqlalchemy, sqlmodel, nats, minio, signxml, lxml"),
        ("exchange", "exchange/ knows no domain"),
        ("domains", "a domain imports no other domain (bridges.py connects them)"),
        ("app", "only the CLI imports the composition root"),
        ("bridges", "only the composition root imports the bridges"),
        ("peers", "only the composition root imports the peers' gRPC adapters"),
    ],
)
def test_imports_point_down(rule: str, meaning: str) -> None:
    assert _violations(rule) == [], meaning


def test_the_floor_check_sees_imports() -> None:
    # The rules above pass on an empty list too: prove the parser finds what is there.
    assert "justice.bridges" in imports_of(ROOT / "app.py")
    assert "justice.reports.lookup.ReportLookup" in imports_of(ROOT / "bridges.py")
    assert any(t.startswith("sqlmodel") for t in imports_of(ROOT / "reports" / "store.py"))
    assert {m for m, _ in _sources()} >= {"justice.app", "justice.reports.model"}
    assert use_case_modules("evidence") >= {
        "justice.evidence.uploads",
        "justice.evidence.sharing",
        "justice.evidence.integrity",
        "justice.evidence.ports",
    }
    assert _is_adapter("justice.platform.blobs.BlobLock")
    assert _is_adapter("minio.error")
    assert "justice.reports.model.ReportQuery" in imports_of(ROOT / "reports" / "store.py")
