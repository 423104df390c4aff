"""`make bench`: run every tests/benchmarks/bench_*.py on each database and print each figure
with its ratio and goal.

Each module exposes `main() -> list[Figure]` and serves from the database named by
JUSTICE_BENCH_DATABASE ("sqlite" or "postgres"); this runner sets it for each database in
JUSTICE_BENCH_DATABASES (default: both). `python -m tests.benchmarks signing` runs only the
modules whose name contains "signing".
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import DATABASE_VARIABLE


def main(selected: list[str]) -> None:
    console = Console()
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    modules = [m for m in modules if not selected or any(s in m for s in selected)]
    databases = os.environ.get("JUSTICE_BENCH_DATABASES", "sqlite postgres").split()
    figures: list[Figure] = []
    for database in databases:
        os.environ[DATABASE_VARIABLE] = database
        for name in modules:
            console.print(f"[bold]running {name} on {database}[/bold]")
            try:
                found = importlib.import_module(f"tests.benchmarks.{name}").main()
            except Exception as error:  # one broken figure must not hide the others
                console.print(f"[red]{name} failed on {database}: {error!r}[/red]")
                continue
            figures += [dataclasses.replace(f, database=database) for f in found]
    table = Table(
        "figure", "database", "value", "baseline (same run)", "ratio", "goal", title="make bench"
    )
    for f in figures:
        verdict = {True: "[green]met[/green]", False: "[red]missed[/red]", None: ""}[f.meets_goal]
        goal = "" if f.goal is None else f"{'≤' if f.lower_is_better else '≥'} {f.goal:g} {verdict}"
        table.add_row(
            f.name,
            f.database,
            f"{f.value:,.1f} {f.unit}",
            f"{f.baseline_name}: {f.baseline_value:,.1f} {f.unit}",
            f"{f.ratio:.3f}",
            goal,
        )
    console.print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
