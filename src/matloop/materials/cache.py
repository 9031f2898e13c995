"""SQLite cache of MLIP evaluations, keyed by structure fingerprint + backend + settings.

Each result is committed as soon as it is stored, so a killed run loses nothing it finished.
WAL journaling lets several processes read while one writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from matloop.materials.structures import structure_fingerprint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    formula TEXT NOT NULL,
    mlip TEXT NOT NULL,
    mlip_version TEXT NOT NULL,
    settings TEXT NOT NULL,
    result TEXT NOT NULL,
    created_unix REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_formula ON evaluations(formula);
"""


def evaluation_key(structure: Structure, *, kind: str, mlip: str, mlip_version: str,
                   settings: dict[str, Any]) -> str:
    """Cache key of one evaluation: what was computed, on what, with which model and settings."""
    payload = json.dumps(
        {
            "fingerprint": structure_fingerprint(structure),
            "kind": kind,
            "mlip": mlip,
            "mlip_version": mlip_version,
            "settings": settings,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A WAL-mode SQLite connection usable from several threads, with ``schema`` applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)
    conn.commit()
    return conn


class EvaluationCache:
    """Persistent store of evaluation results (JSON documents)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = open_sqlite(self.path, _SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result for ``key``, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM evaluations WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, *, kind: str, structure: Structure, mlip: str, mlip_version: str,
            settings: dict[str, Any], result: dict[str, Any]) -> None:
        """Store (or replace) one result and commit at once."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO evaluations VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    key, kind, structure_fingerprint(structure),
                    structure.composition.reduced_formula, mlip, mlip_version,
                    json.dumps(settings, sort_keys=True), json.dumps(result), time.time(),
                ),
            )
            self._conn.commit()

    def count(self, kind: str | None = None) -> int:
        """Number of stored results, optionally of one kind."""
        with self._lock:
            if kind is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
            return int(self._conn.execute(
                "SELECT COUNT(*) FROM evaluations WHERE kind = ?", (kind,)
            ).fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
