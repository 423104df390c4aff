"""A benchmark figure is a measurement next to a baseline measured in the same run."""

from __future__ import annotations

import re
import statistics
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    # The ratio the issue asks for at least (or at most, for lower-is-better figures).
    goal: float | None = None
    lower_is_better: bool = False
    # The database the platform served from; set by tests.benchmarks.__main__.
    database: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None:
            return None
        return self.ratio <= self.goal if self.lower_is_better else self.ratio >= self.goal


def median_of(values: list[float]) -> float:
    return statistics.median(values)


def openssl_rsa2048_signs_per_second(seconds: int = 3) -> float:
    """`openssl speed rsa2048`, single core, in its machine-readable form."""
    output = subprocess.run(
        ["openssl", "speed", "-mr", "-seconds", str(seconds), "rsa2048"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^\+F2:\d+:2048:([0-9.]+):", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"unexpected openssl speed output: {output[-300:]}")
    return float(match.group(1))
