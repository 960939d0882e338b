"""The results store: one SQLite file, one row per finished task, keyed by its content hash.

Only the coordinating process writes, one committed transaction per finished task, so a crash
(Ctrl-C, SIGKILL of a worker or of the whole run) loses at most the tasks in flight, and a row is
never half written. The key is the primary key: a task finished twice (a worker killed after it
answered, a second run racing the first) is stored once. A failed task is stored too, so that the
report can say why, but it is never a result: :meth:`Store.finished` leaves it out, the next run
runs it again, and what that run gets replaces it. A successful row is never replaced. WAL
journaling lets a report read the file while a sweep writes it.

The ``runs`` table records each run: who runs it (host, pid and the process's start time), and
how it ended, ``finished`` or ``interrupted``. A run killed before it could say so is marked
interrupted by the next run that finds its process gone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["RUN_STATUSES", "Store"]

#: What the ``status`` of a run may be.
RUN_STATUSES = ("running", "finished", "interrupted")

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
    created REAL NOT NULL,
    run INTEGER                    -- the run that stored it (NULL: a file older than the column)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,                 -- NULL unless status is 'finished'
    spec TEXT NOT NULL,
    executor TEXT NOT NULL,
    computed INTEGER,
    cached INTEGER,
    failed INTEGER,
    status TEXT,                   -- RUN_STATUSES
    host TEXT,                     -- the process of the run: host name, pid, start time
    pid INTEGER,
    pid_start INTEGER
);
"""

#: Columns added since the first schema: ``(table, column, type)``.
_ADDED = (("results", "run", "INTEGER"), ("runs", "failed", "INTEGER"),
          ("runs", "status", "TEXT"), ("runs", "host", "TEXT"), ("runs", "pid", "INTEGER"),
          ("runs", "pid_start", "INTEGER"))


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
        self._migrate()
        #: The run that rows written now belong to (:meth:`start_run`).
        self.run: int | None = None

    def _migrate(self) -> None:
        """Add the columns a file written by an older version lacks."""
        if not self._outdated():
            return
        # One writer at a time: two runs opening an old file must not both add a column.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, kind in _ADDED:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            # Runs recorded before the status column: finished, or never heard of again.
            self._db.execute("UPDATE runs SET status = CASE WHEN finished IS NULL "
                             "THEN 'interrupted' ELSE 'finished' END WHERE status IS NULL")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _outdated(self) -> bool:
        for table, column, _ in _ADDED:
            if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                return True
        return self._db.execute("SELECT 1 FROM runs WHERE status IS NULL LIMIT 1"
                                ).fetchone() is not None

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finished(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that have a result (a failed task has none: it runs again)."""
        keys = list(keys)
        done: set[str] = set()
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            done.update(k for (k,) in self._db.execute(
                f"SELECT key FROM results WHERE status = 'ok' AND key IN ({marks})", part))
        return done

    def put(self, key: str, stage: str, config: dict[str, Any], code: str, *,
            result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """Store a finished task (its result, or its ``error``) in its own transaction.

        A failure replaces an earlier failure; nothing replaces a result. Return False if the key
        had a result already.
        """
        seconds = None if result is None else result.get("seconds")
        cur = self._db.execute(
            "INSERT INTO results (key, stage, config, status, result, error, seconds, code, "
            "created, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET status = excluded.status, "
            "result = excluded.result, error = excluded.error, seconds = excluded.seconds, "
            "code = excluded.code, created = excluded.created, run = excluded.run "
            "WHERE results.status != 'ok'",
            (key, stage, json.dumps(config, sort_keys=True), "ok" if error is None else "error",
             None if result is None else json.dumps(result), error, seconds, code, time.time(),
             self.run))
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

    def running(self) -> list[dict[str, Any]]:
        """Runs recorded as running: ``id``, ``host``, ``pid``, ``pid_start``, oldest first."""
        rows = self._db.execute("SELECT id, host, pid, pid_start FROM runs "
                                "WHERE status = 'running' ORDER BY id")
        return [dict(zip(("id", "host", "pid", "pid_start"), row, strict=True)) for row in rows]

    def mark_interrupted(self, runs: Iterable[int]) -> None:
        """Record that ``runs``, recorded as running, ended without finishing."""
        for run in runs:
            self._db.execute("UPDATE runs SET status = 'interrupted' "
                             "WHERE id = ? AND status = 'running'", (run,))

    def interrupted_tail(self) -> tuple[list[int], int]:
        """The interrupted runs since the last finished one, and the results they stored."""
        last = self._db.execute("SELECT MAX(id) FROM runs WHERE status = 'finished'"
                                ).fetchone()[0]
        runs = [r for (r,) in self._db.execute(
            "SELECT id FROM runs WHERE status = 'interrupted' AND id > ? ORDER BY id",
            (-1 if last is None else last,))]
        if not runs:
            return [], 0
        marks = ",".join("?" * len(runs))
        stored = self._db.execute(f"SELECT COUNT(*) FROM results WHERE status = 'ok' "
                                  f"AND run IN ({marks})", runs).fetchone()[0]
        return runs, int(stored)

    def start_run(self, spec: str, executor: str, *, host: str | None = None,
                  pid: int | None = None, pid_start: int | None = None) -> int:
        """Record the start of a run by the process ``(host, pid, pid_start)``; return its id.
        Rows written from now on belong to it."""
        cur = self._db.execute(
            "INSERT INTO runs (started, spec, executor, status, host, pid, pid_start) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?)",
            (time.time(), spec, executor, host, pid, pid_start))
        self.run = int(cur.lastrowid or 0)
        return self.run

    def end_run(self, run: int, status: str, *, computed: int, cached: int, failed: int
                ) -> None:
        """Record the end of a run: ``status`` ``"finished"`` or ``"interrupted"``."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be 'finished' or 'interrupted', not {status!r}")
        self._db.execute(
            "UPDATE runs SET status = ?, finished = ?, computed = ?, cached = ?, failed = ? "
            "WHERE id = ?",
            (status, time.time() if status == "finished" else None, computed, cached, failed,
             run))
