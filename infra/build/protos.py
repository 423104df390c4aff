"""Hatch build hook: compile protos/ into services/justice/ at build and install time.

The proto package path equals the Python import path (justice.reports.v1 lives in
services/justice/reports/v1/), so generated imports need no rewriting. Generated
files are not kept in git; every build regenerates them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _include_dir(module: str, depth: int) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{module} is needed to compile the protos")
    return str(Path(spec.origin).parents[depth])


def compile_protos(root: Path) -> list[Path]:
    """Compile every .proto under root/protos into root/services; return the outputs."""
    from grpc_tools import protoc

    proto_root = root / "protos"
    out = root / "services"
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    bindir = Path(sys.executable).parent
    plugin = shutil.which("protoc-gen-mypy", path=str(bindir)) or shutil.which("protoc-gen-mypy")
    plugin_grpc = shutil.which("protoc-gen-mypy_grpc", path=str(bindir)) or shutil.which(
        "protoc-gen-mypy_grpc"
    )
    if plugin is None or plugin_grpc is None:
        raise RuntimeError("mypy-protobuf is needed to compile the protos")
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{_include_dir('grpc_tools', 0)}/_proto",
        f"-I{_include_dir('google.type.date_pb2', 2)}",
        f"--plugin=protoc-gen-mypy={plugin}",
        f"--plugin=protoc-gen-mypy_grpc={plugin_grpc}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    generated: list[Path] = []
    for proto in protos:
        package_dir = out / Path(proto).parent
        # Every directory between services/justice and the generated files must be a package.
        for directory in [package_dir, *package_dir.parents]:
            if directory == out:
                break
            init = directory / "__init__.py"
            if not init.exists():
                init.touch()
                generated.append(init)
        stem = Path(proto).stem
        generated += sorted(package_dir.glob(f"{stem}_pb2*"))
    return generated


class ProtosHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "protos"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        compile_protos(Path(self.root))
