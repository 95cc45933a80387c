"""The verdict journal: what a worker judged, on local disk, until the store has taken it.

A judge call is the expensive part of a study (a 7B judge costs GPU seconds per verdict),
so match play writes every verdict, and every batch of games, to this journal *before* it
asks the store to take them, and forgets them once the store has. A worker that dies while
the database is down (an outage past ``outage_timeout``, a full disk, a read-only file,
SIGKILL during the wait) leaves them here, and the next :class:`~optuna_pandalm.Arena` of
the study on the same machine, ``optuna-pandalm check --repair`` and ``optuna-pandalm
upgrade`` store them.

Where: ``<root>/<database>/<study>/<host>/<pid>-<ns>.jsonl``. ``root`` is the ``journal``
argument of the arena, else ``$OPTUNA_PANDALM_JOURNAL``, else
``$XDG_CACHE_HOME/optuna-pandalm/journal`` (``~/.cache/...``). ``<database>`` is a hash of
the masked storage URL (a relative SQLite path made absolute), ``<study>`` the study's
name made safe for a file name plus a hash, ``<host>`` this machine's name: each machine
replays only what it wrote (a home folder shared over NFS holds one folder per machine).
Each worker process appends to a segment of its own (emptied whenever the store has taken
everything in it, deleted at a clean exit), which it holds an exclusive ``flock`` on while it
lives; the kernel drops the lock when the process dies, however it dies, which
is how a replayer tells a dead worker's segment from a live one's.

Format: one JSON object per line, appended and synced (``fdatasync``) before the store is
asked:

* ``{"kind": "verdict", "study", "arena_id", "judge", "prompt_hash", "response_1_hash",
  "response_2_hash", "verdict": {winner, p_tie, p_1, p_2, reason, reference, raw,
  latency_s}, "match": {"id", "challenger", "opponent"}}``: a verdict under its cache key
  (the prompt and the two responses in shown order, by hash; the match's challenger and
  opponent are player ids, so the shown order is whose response hash comes first).
* ``{"kind": "games", "study", "arena_id", "match_id", "games": [{prompt_position,
  first_player_id, second_player_id, verdict_id, outcome, annotator}]}``: a batch of games
  built on stored verdicts.

Replaying stores the verdicts, then the games, with the store's idempotent inserts (the
first verdict stored for a key wins; a game already stored for the pair and prompt is
skipped), so replaying twice, or by two processes at once, stores nothing twice; the
segment is then deleted. A torn last line (a crash mid-write) is skipped with a warning.
A segment holds at most what its worker judged since the store last took a batch: about
one batch (``batch_size`` verdicts, twice that with ``position="swap"``) while the store
works, everything judged during an outage otherwise (a few KB per verdict: its reason and
raw text).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from optuna_pandalm.store._games import GameRecord
from optuna_pandalm.store._interface import ArenaStore
from optuna_pandalm.store._verdict_cache import StoredVerdict, VerdictKey

__all__ = [
    "JOURNAL_ENV",
    "Journal",
    "JournalReplay",
    "journal_folder",
    "journal_root",
    "journals_enabled",
    "pending_entries",
    "replay_journals",
]

_logger = logging.getLogger(__name__)

JOURNAL_ENV = "OPTUNA_PANDALM_JOURNAL"
"""Environment variable naming the journal's root folder."""

_VERDICT_FIELDS = ("winner", "p_tie", "p_1", "p_2", "reason", "reference", "raw", "latency_s")
_GAME_FIELDS = [f.name for f in dataclasses.fields(GameRecord)]


def journal_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The journal's root folder: ``root``, else ``$OPTUNA_PANDALM_JOURNAL``, else
    ``$XDG_CACHE_HOME/optuna-pandalm/journal`` (``~/.cache/optuna-pandalm/journal``).

    Example:
        >>> journal_root("/tmp/j")
        PosixPath('/tmp/j')
    """
    if root is not None:
        return Path(root)
    if os.environ.get(JOURNAL_ENV):
        return Path(os.environ[JOURNAL_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache, "optuna-pandalm", "journal")


def _database_key(masked_url: str) -> str:
    """A folder name for a database: a hash of its masked URL, a relative SQLite path made
    absolute (so workers started in other folders agree)."""
    try:
        url = sa.make_url(masked_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            masked_url = url.set(database=os.path.abspath(url.database)).render_as_string()
    except sa.exc.ArgumentError:
        pass
    return "db-" + hashlib.sha256(masked_url.encode()).hexdigest()[:16]


def _study_key(study_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", study_name)[:40]
    return f"{safe}-{hashlib.sha256(study_name.encode()).hexdigest()[:8]}"


def journal_folder(
    masked_url: str, study_name: str, *, root: str | os.PathLike[str] | None = None
) -> Path:
    """The folder of this machine's journal of a study in a database.

    Example:
        >>> journal_folder("sqlite:////tmp/a.db", "s", root="/j").parts[:2]
        ('/', 'j')
    """
    return journal_root(root) / _database_key(masked_url) / _study_key(study_name) / _host()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", socket.gethostname()) or "host"


def journals_enabled(masked_url: str) -> bool:
    """Whether a journal makes sense: not for a memory database, which dies with its
    process (nothing could replay into it)."""
    try:
        url = sa.make_url(masked_url)
    except sa.exc.ArgumentError:
        return False
    database = url.database or ""
    return url.get_backend_name() != "sqlite" or (
        database not in ("", ":memory:") and url.query.get("mode") != "memory"
    )


class Journal:
    """This process's segment of a study's journal, opened on the first write.

    Not thread-safe (match play is single-threaded). ``write`` appends and fsyncs;
    ``forget`` deletes the segment once the store holds everything in it.
    """

    def __init__(self, folder: Path, *, study_name: str, arena_id: int) -> None:
        self.folder = folder
        self.study_name = study_name
        self.arena_id = arena_id
        self._file: IO[str] | None = None
        self._holds = False  # the segment holds entries the store may not have
        self.path: Path | None = None

    def verdicts(
        self,
        judge_name: str,
        items: Sequence[tuple[VerdictKey, StoredVerdict]],
        match: dict[str, int] | None = None,
    ) -> None:
        """Journal verdicts the store is about to be asked to take."""
        self._write(
            {
                "kind": "verdict",
                "study": self.study_name,
                "arena_id": self.arena_id,
                "judge": judge_name,
                **dataclasses.asdict(key),
                "verdict": {f: getattr(verdict, f) for f in _VERDICT_FIELDS},
                "match": match,
            }
            for key, verdict in items
        )

    def games(self, match_id: int, records: Sequence[GameRecord]) -> None:
        """Journal a batch of games the store is about to be asked to take."""
        if records:
            entry = {
                "kind": "games",
                "study": self.study_name,
                "arena_id": self.arena_id,
                "match_id": match_id,
                "games": [dataclasses.asdict(g) for g in records],
            }
            self._write([entry])

    def _write(self, entries: Any) -> None:
        lines = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
        if not lines:
            return
        if self._file is None:
            self.path = self.folder / f"{os.getpid()}-{time.time_ns()}.jsonl"
            self._file = _create(self.path)
            fcntl.flock(self._file, fcntl.LOCK_EX)  # ours while this process lives
            atexit.register(self.close)
        self._file.write(lines)
        self._file.flush()
        os.fdatasync(self._file.fileno())
        self._holds = True

    def forget(self) -> None:
        """Empty the segment: the store holds everything in it. Kept open for the next
        write (emptying costs no sync: entries a crash brings back are stored again, which
        stores nothing twice)."""
        if self._file is not None and self._holds:
            self._file.truncate(0)
            self._holds = False

    def close(self) -> None:
        """Close the segment, deleting it (and the study's empty folders) when the store
        holds everything in it; registered to run at exit."""
        if self._file is None or self.path is None:
            return
        if not self._holds:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._file.close()
        self._file, self.path = None, None
        if not self._holds:
            _remove_empty(self.folder)

    def replay_own(self, store: ArenaStore) -> JournalReplay:
        """Store everything in this process's segment, then delete it (after a failure the
        games of a batch may be nowhere else)."""
        if self.path is None or not self._holds:
            return JournalReplay()
        done = _store_entries(store, _read(self.path), self.path)
        self.forget()
        return done


def _create(path: Path) -> IO[str]:
    """Open a new segment, making its folders; another worker may remove them, empty,
    between the two steps (:func:`_remove_empty`), so that is retried."""
    for attempt in range(10):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return open(path, "a", encoding="utf-8")
        except FileNotFoundError:
            if attempt == 9:
                raise
    raise AssertionError("unreachable")


def _remove_empty(folder: Path) -> None:
    """Remove the host and study folders when empty (a worker that never failed leaves
    nothing behind)."""
    for path in (folder, folder.parent, folder.parent.parent):
        try:
            path.rmdir()
        except OSError:
            return


@dataclasses.dataclass
class JournalReplay:
    """What a replay stored: verdicts and games sent to the store (already stored ones
    included: the inserts are idempotent), segments replayed, torn lines skipped and
    segments left because a live worker holds them."""

    verdicts: int = 0
    games: int = 0
    segments: int = 0
    torn: int = 0
    in_use: int = 0

    def add(self, other: JournalReplay) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def _read(path: Path) -> list[dict[str, Any]]:
    """The entries of a segment; a line that is not whole JSON (a crash mid-write) is
    skipped with a warning."""
    entries: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as segment:
        for number, line in enumerate(segment, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or entry.get("kind") not in ("verdict", "games"):
                    raise ValueError("not a journal entry")
            except ValueError:
                _logger.warning(
                    "journal %s line %d is torn or not an entry (a crash mid-write?): skipped",
                    path,
                    number,
                )
                entries.append({"kind": "torn"})
                continue
            entries.append(entry)
    return entries


def _store_entries(store: ArenaStore, entries: list[dict[str, Any]], path: Path) -> JournalReplay:
    """Store a segment's entries: verdicts first (games name them by id), per judge."""
    done = JournalReplay(segments=1, torn=sum(e["kind"] == "torn" for e in entries))
    arenas: dict[str, int | None] = {}

    def sound(entry: dict[str, Any]) -> bool:
        study = str(entry.get("study"))
        if study not in arenas:
            settings = store.arena_settings(study)
            arenas[study] = None if settings is None else int(settings["id"])
        if arenas[study] != entry.get("arena_id"):
            _logger.warning(
                "journal %s: study %r has arena %s in %s, not %s: entry skipped",
                path,
                study,
                arenas[study],
                store.masked_url,
                entry.get("arena_id"),
            )
            return False
        return True

    by_judge: dict[str, dict[VerdictKey, StoredVerdict]] = {}
    for entry in entries:
        if entry["kind"] == "verdict" and sound(entry):
            key = VerdictKey(
                entry["prompt_hash"], entry["response_1_hash"], entry["response_2_hash"]
            )
            verdict = StoredVerdict(**{f: entry["verdict"].get(f) for f in _VERDICT_FIELDS})
            by_judge.setdefault(entry["judge"], {}).setdefault(key, verdict)
    for judge, items in by_judge.items():
        store.save_verdicts(judge, list(items.items()))
        done.verdicts += len(items)
    for entry in entries:
        if entry["kind"] == "games" and sound(entry):
            records = [GameRecord(**{f: g[f] for f in _GAME_FIELDS}) for g in entry["games"]]
            store.save_games(entry["arena_id"], entry["match_id"], records)
            done.games += len(records)
    return done


def _segments(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(folder.glob("*.jsonl"))


def _study_folders(
    masked_url: str, study_name: str | None, root: str | os.PathLike[str] | None
) -> list[Path]:
    """This machine's journal folders of one study, or of every study of the database."""
    if study_name is not None:
        return [journal_folder(masked_url, study_name, root=root)]
    database = journal_root(root) / _database_key(masked_url)
    return sorted(p / _host() for p in database.glob("*")) if database.is_dir() else []


def replay_journals(
    store: ArenaStore,
    study_name: str | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> JournalReplay:
    """Store what dead workers on this machine left in the journal of ``study_name`` (of
    every study of the store's database when ``None``), and delete their segments.

    A segment a live worker holds is left alone (counted in ``in_use``). Idempotent, and
    safe with other replayers: each segment is replayed under its ``flock``.

    Raises:
        StoreError: the store could not take them (the segments stay for the next try).
    """
    done = JournalReplay()
    if store.read_only or not journals_enabled(store.masked_url):
        return done
    for folder in _study_folders(store.masked_url, study_name, root):
        for path in _segments(folder):
            try:
                segment = open(path, encoding="utf-8")  # noqa: SIM115 (closed below)
            except FileNotFoundError:
                continue  # another replayer took it
            with segment:
                try:
                    fcntl.flock(segment, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    done.in_use += 1  # its worker lives (or another replayer holds it)
                    continue
                try:
                    if os.fstat(segment.fileno()).st_ino != os.stat(path).st_ino:
                        continue
                except FileNotFoundError:
                    continue  # replayed and deleted while we waited
                entries = _read(path)
                if entries:
                    done.add(_store_entries(store, entries, path))
                path.unlink()
        _remove_empty(folder)
    if done.segments:
        _logger.warning(
            "stored %d verdicts and %d games that a worker on this machine judged but could "
            "not store (its journal in %s)",
            done.verdicts,
            done.games,
            journal_root(root),
        )
    return done


def pending_entries(
    masked_url: str,
    study_name: str | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> dict[Path, tuple[int, int]]:
    """(verdicts, games) in each segment of this machine's journal that no worker holds
    (read only: what ``check`` reports as unsaved)."""
    found: dict[Path, tuple[int, int]] = {}
    if not journals_enabled(masked_url):
        return found
    for folder in _study_folders(masked_url, study_name, root):
        for path in _segments(folder):
            try:
                with open(path, encoding="utf-8") as segment:
                    fcntl.flock(segment, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    entries = _read(path)
            except FileNotFoundError:
                continue
            except BlockingIOError:
                continue  # a live worker's batch in flight, not unsaved
            verdicts = sum(e["kind"] == "verdict" for e in entries)
            games = sum(len(e["games"]) for e in entries if e["kind"] == "games")
            found[path] = (verdicts, games)
    return found
