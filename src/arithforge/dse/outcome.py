"""What a sweep produced: the input of the plots and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .designs import Skip
from .spec import Spec

__all__ = ["Outcome"]


@dataclass
class Outcome:
    """What a sweep produced.

    Members
    -------
    points : list of dict
        One row per design x workload: design fields, accuracy and cost columns, ``status``.
    skipped : list of Skip
    fronts : dict
        ``(workload, objective) -> list of point indices`` on the 2-D front of accuracy and that
        objective; ``(workload, "nd")`` for the N-objective front.
    knees : dict
        Same keys, the index of the knee point.
    verified : list of dict
        The designs written to ``rtl/`` and their verification.
    mixed : dict or None
        The per-layer mixed-format search.
    computed, cached, failed : int
        Tasks run by this call (failed ones included), found in the store, and failed: over
        every stage, the search and the mixed-format search included.
    seconds : dict
        Wall time per phase.
    """

    spec: Spec
    out_dir: Path
    points: list[dict[str, Any]]
    skipped: list[Skip]
    fronts: dict[tuple[str, str], list[int]]
    knees: dict[tuple[str, str], int | None]
    verified: list[dict[str, Any]] = field(default_factory=list)
    mixed: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    computed: int = 0
    cached: int = 0
    failed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    executor: str = "local"

