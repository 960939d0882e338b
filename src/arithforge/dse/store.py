"""The results store: one SQLite file, one row per finished task, keyed by its content hash.

Only the coordinating process writes, one committed transaction per finished task, so a crash
(Ctrl-C, SIGKILL of a worker or of the whole run) loses at most the tasks in flight, and a row is
never half written. The key is the primary key and rows are inserted with ``INSERT OR IGNORE``:
a task finished twice (a worker killed after it answered, a second run racing the first) is
stored once. WAL journaling lets a report read the file while a sweep writes it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,          -- 'ok' or 'error'
    result TEXT,                   -- JSON of the result ('ok')
    error TEXT,                    -- one line ('error')
    seconds REAL,
    code TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    spec TEXT NOT NULL,
    executor TEXT NOT NULL,
    computed INTEGER,
    cached INTEGER
);
"""


class Store:
    """A results file (created if missing).

    Parameters
    ----------
    path : path-like
        The SQLite file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a crash of the process (not a
        # power cut), which is what resuming needs, without an fsync per row.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finished(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that have a row."""
        keys = list(keys)
        done: set[str] = set()
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            done.update(k for (k,) in self._db.execute(
                f"SELECT key FROM results WHERE key IN ({marks})", part))
        return done

    def put(self, key: str, stage: str, config: dict[str, Any], code: str, *,
            result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """Store a finished task in its own transaction; False if the key already had a row."""
        seconds = None if result is None else result.get("seconds")
        cur = self._db.execute(
            "INSERT OR IGNORE INTO results (key, stage, config, status, result, error, seconds, "
            "code, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, stage, json.dumps(config, sort_keys=True), "ok" if error is None else "error",
             None if result is None else json.dumps(result), error, seconds, code, time.time()))
        return cur.rowcount == 1

    def get(self, key: str) -> dict[str, Any] | None:
        """The row of ``key`` as a dict (``result`` decoded), or None."""
        row = self._db.execute("SELECT key, stage, config, status, result, error, seconds "
                               "FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return {"key": row[0], "stage": row[1], "config": json.loads(row[2]), "status": row[3],
                "result": None if row[4] is None else json.loads(row[4]), "error": row[5],
                "seconds": row[6]}

    def rows(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Every row (of one stage), oldest first."""
        query = "SELECT key FROM results" + (" WHERE stage = ?" if stage else "") + \
            " ORDER BY rowid"
        keys = [k for (k,) in self._db.execute(query, (stage,) if stage else ())]
        return [r for r in map(self.get, keys) if r is not None]

    def count(self) -> int:
        """Number of stored results."""
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def start_run(self, spec: str, executor: str) -> int:
        """Record the start of a run; return its id."""
        cur = self._db.execute("INSERT INTO runs (started, spec, executor) VALUES (?, ?, ?)",
                               (time.time(), spec, executor))
        return int(cur.lastrowid or 0)

    def finish_run(self, run: int, computed: int, cached: int) -> None:
        """Record the end of a run."""
        self._db.execute("UPDATE runs SET finished = ?, computed = ?, cached = ? WHERE id = ?",
                         (time.time(), computed, cached, run))
