"""`make bench`: run every tests/benchmarks/bench_*.py and print each figure with its ratio.

Each module exposes `main() -> list[Figure]`. `python -m tests.benchmarks signing` runs only
the modules whose name contains "signing".
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.benchmarks.figures import Figure


def main(selected: list[str]) -> None:
    console = Console()
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    modules = [m for m in modules if not selected or any(s in m for s in selected)]
    figures: list[Figure] = []
    for name in modules:
        console.print(f"[bold]running {name}[/bold]")
        figures += importlib.import_module(f"tests.benchmarks.{name}").main()
    table = Table("figure", "value", "baseline (same run)", "ratio", "goal", title="make bench")
    for f in figures:
        verdict = {True: "[green]met[/green]", False: "[red]missed[/red]", None: ""}[f.meets_goal]
        goal = "" if f.goal is None else f"{'≤' if f.lower_is_better else '≥'} {f.goal:g} {verdict}"
        table.add_row(
            f.name,
            f"{f.value:,.1f} {f.unit}",
            f"{f.baseline_name}: {f.baseline_value:,.1f} {f.unit}",
            f"{f.ratio:.3f}",
            goal,
        )
    console.print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
