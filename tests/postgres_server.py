"""A private PostgreSQL server on a free loopback port, started the way ``.ci/postgres.sh``
starts the shared one, for the tests that stop and restart their server (outages): stopping
the shared server would cut off the tests that run beside them (``pytest -n 2``)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

START_TIMEOUT_S = 60


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's programs: ``OPTUNA_PANDALM_TEST_POSTGRES_BIN`` (set by
    ``.ci/postgres.sh``), else the newest ``/usr/lib/postgresql/*/bin``; ``None`` when
    PostgreSQL is not installed."""
    named = os.environ.get("OPTUNA_PANDALM_TEST_POSTGRES_BIN")
    found = [Path(named)] if named else []
    found += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: [int(part) for part in path.parent.name.split(".") if part.isdigit()],
        reverse=True,
    )
    return next((folder for folder in found if (folder / "initdb").is_file()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(command: list[str]) -> None:
    """Run ``command``; as the ``postgres`` user when we are root (PostgreSQL refuses to
    run as root; ``.ci/run`` runs as root)."""
    if os.getuid() == 0:
        command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@dataclass(frozen=True)
class PostgresServer:
    """A server of our own: its programs' folder, its data folder and its loopback port."""

    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), *args])

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {shlex.quote(str(self.data))} "
            "-c max_connections=100 -c fsync=off"
        )
        log = str(self.data / "log")
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", log, "-o", options)

    def stop(self) -> None:
        """Fast shutdown: open sessions are cut off, as in a database restart."""
        self._pg_ctl("stop", "-m", "fast", "-w")

    def is_up(self) -> bool:
        try:
            self._pg_ctl("status")
            return True
        except subprocess.CalledProcessError:
            return False

    @contextlib.contextmanager
    def stopped(self, seconds: float | None) -> Iterator[threading.Event]:
        """Stop the server in a background thread; start it again after ``seconds`` (or on
        leaving). The event is set once it is down. It is running again, and accepting
        connections, when the block is left."""
        down = threading.Event()

        def outage() -> None:
            self.stop()
            down.set()
            if seconds is not None:
                time.sleep(seconds)
                self.start()

        thread = threading.Thread(target=outage)
        thread.start()
        try:
            assert down.wait(START_TIMEOUT_S), "the test server did not stop"
            yield down
        finally:
            thread.join()
            if not self.is_up():
                self.start()

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """The URL of a fresh database on it; dropped afterwards through a new connection
        (the server may have restarted in between, killing any pooled one)."""
        name = f"test_{os.getpid()}_{time.monotonic_ns()}"
        self._admin(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(self.url).set(database=name).render_as_string(hide_password=False)
        finally:
            self._admin(f'DROP DATABASE "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(statement))
        finally:
            engine.dispose()


@contextlib.contextmanager
def private_postgres(bin_folder: Path) -> Iterator[PostgresServer]:
    """A fresh server (``initdb``) on a free loopback port until the block ends; then it is
    stopped and its folder removed. The folder is in ``/tmp``, as ``.ci/postgres.sh``'s, where
    the ``postgres`` user can reach it when we are root."""
    data = Path(tempfile.mkdtemp(prefix="optuna-pandalm-pg-", dir="/tmp"))
    try:
        if os.getuid() == 0:
            shutil.chown(data, "postgres")
        initdb = [str(bin_folder / "initdb"), "-D", str(data), "-U", "postgres"]
        _as_postgres([*initdb, "--auth=trust", "-E", "UTF8"])
        server = PostgresServer(bin_folder, data, _free_port())
        server.start()
        try:
            yield server
        finally:
            if server.is_up():
                server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
