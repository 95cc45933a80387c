"""PgBouncer in transaction mode in front of the test PostgreSQL (``.ci/pgbouncer.sh``)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "pgbouncer.sh"
START_TIMEOUT_S = 30


def pgbouncer_installed() -> bool:
    return shutil.which("pgbouncer") is not None or Path("/usr/sbin/pgbouncer").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PgBouncer:
    port: int
    folder: str

    def log_tail(self, lines: int = 200) -> str:
        """The last ``lines`` lines of its log (while it runs: the folder goes with it)."""
        log = Path(self.folder, "pgbouncer.log")
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def url_for(self, url: str) -> str:
        """``url`` (a database on the server behind) through this PgBouncer, with psycopg 3's
        prepared statements off, as transaction mode needs."""
        through = sa.make_url(url).set(host="127.0.0.1", port=self.port)
        through = through.update_query_dict({"prepare_threshold": "none"})
        return through.render_as_string(hide_password=False)

    @classmethod
    @contextlib.contextmanager
    def start(cls, server_url: str, *, pool_size: int = 20) -> Iterator[PgBouncer]:
        """Run one on a free loopback port until the block ends, with ``pool_size`` server
        connections; its folder is removed."""
        server = sa.make_url(server_url)
        folder = tempfile.mkdtemp(prefix="pgbouncer-")
        port = _free_port()
        # PgBouncer logs every login and close to stderr as well as to its log file. A pipe
        # that nobody reads fills after 64 KiB (about 220 connections), and PgBouncer then
        # blocks writing to it, accepting no one: 32 workers through it timed out connecting
        # (ConnectionTimeout for 128 s). So stderr goes to a file.
        stderr = open(Path(folder, "stderr.log"), "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [
                "bash",
                str(SCRIPT),
                folder,
                str(port),
                server.host or "127.0.0.1",
                str(server.port or 5432),
                str(pool_size),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 1),
                ):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    process.terminate()
                    process.wait(10)
                    said = "".join(
                        path.read_text(errors="replace")
                        for path in (Path(folder, "stderr.log"), Path(folder, "pgbouncer.log"))
                        if path.exists()
                    )
                    raise RuntimeError(f"PgBouncer did not start: {said}")
                time.sleep(0.05)
            yield cls(port, folder)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            stderr.close()
            shutil.rmtree(folder, ignore_errors=True)
