"""Shared fixtures: storage URLs for every supported database."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def _share_the_cores() -> None:
    """Under ``pytest -n N``, each process's BLAS and OpenMP pools (numpy, scipy, torch) get
    its share of the cores, at least one thread, unless the environment says otherwise.

    Set before numpy or torch is imported, and inherited by the processes tests start. With
    each library's default (a thread per core) two processes on CI's 2 cores oversubscribed
    them: in one run each, ``tests/test_arena.py``'s module fixture took 106 s against 69 s,
    the real model's quick run 65 s against 44 s.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers < 2:
        return
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    threads = str(max(1, cores // workers))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)


_share_the_cores()

import pytest  # noqa: E402

from tests.postgres_server import PostgresServer, postgres_bin, private_postgres  # noqa: E402

POSTGRES_URL = os.environ.get("OPTUNA_PANDALM_TEST_POSTGRES_URL")

# The test files that take longest (a minute or more each on CI, mostly their module
# fixtures), started first under ``pytest -n 2``: the two processes take whole files in
# collection order (pyproject's addopts), and a long file taken last would run alone while
# the other process idles. A file not named here keeps its place.
LONGEST_FIRST = (
    "tests/test_arena.py",
    "tests/test_real_model.py",
    "tests/test_store_optuna_schema.py",
    "tests/test_demo_output.py",
    "tests/test_ray_tune.py",
    "tests/test_tune_and_demo.py",
    "tests/test_many_workers.py",
    "tests/test_workers.py",
    "tests/test_faults.py",
    "tests/test_outages.py",
    "tests/test_readme.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the files of :data:`LONGEST_FIRST` first (each file's tests in order)."""
    if not hasattr(config, "workerinput"):  # not an xdist worker: the usual order
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def _postgres_database() -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    import sqlalchemy as sa

    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: OPTUNA_PANDALM_TEST_POSTGRES_URL unset")
        pytest.skip("no PostgreSQL server (set OPTUNA_PANDALM_TEST_POSTGRES_URL)")
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def outage_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test process's own, for tests that stop and restart it:
    the shared one stays up for the tests running beside them."""
    folder = postgres_bin()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the outage tests: PostgreSQL's programs not found")
        pytest.skip("PostgreSQL is not installed (set OPTUNA_PANDALM_TEST_POSTGRES_BIN)")
    with private_postgres(folder) as server:
        yield server


@pytest.fixture(scope="session")
def memory_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder in memory (``/dev/shm``, a tmpfs) where the machine has one, else pytest's,
    removed after the session: for the SQLite files and verdict journals of tests about
    results rather than durability. Their fsyncs are free there: on a loaded CI disk they
    were about a fifth of a simulated study's time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path_factory.mktemp("memory")
        return
    root = Path(tempfile.mkdtemp(prefix="optuna-pandalm-tests-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _journal_in_tmp(memory_folder: Path, monkeypatch) -> None:
    """Each test's verdict journal in a folder of its own, never the user's cache."""
    monkeypatch.setenv(
        "OPTUNA_PANDALM_JOURNAL", tempfile.mkdtemp(prefix="journal-", dir=memory_folder)
    )


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database of each supported kind."""
    if request.param == "sqlite-file":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    elif request.param == "sqlite-memory":
        yield "sqlite://"
    else:
        yield from _postgres_database()


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_storage_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database several processes can open at once."""
    if request.param == "sqlite-file":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory) -> str:
    """A 2-layer Llama with a character tokenizer, saved to a folder (loaded by path)."""
    from optuna_pandalm.demo.tiny_model import save_tiny_llama

    return str(save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), context=512))
