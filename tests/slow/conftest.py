"""Real services for the slow tests: a throwaway PostgreSQL server and headless Chromium.

A missing binary fails the test with the command that installs it (`make test-services`): a slow test
that skips when its service is absent would pass on a machine that never ran it."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `make test-services` (as root: apt-get install -y postgresql chromium chromium-driver)"
PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then Debian's /usr/lib/postgresql/*/bin."""
    on_path = [shutil.which(tool) for tool in PG_TOOLS]
    if all(on_path):
        return Path(on_path[0]).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in versions:
        if all(os.access(Path(folder, tool), os.X_OK) for tool in PG_TOOLS):
            return Path(folder)
    pytest.fail(
        f"PostgreSQL server binaries {PG_TOOLS} not found on PATH or in /usr/lib/postgresql/*/bin: {INSTALL_HINT}"
    )


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL cluster reachable over TCP on 127.0.0.1 with a password."""

    port: int
    user: str
    password: str
    bin_dir: Path
    socket_dir: Path

    def env(self, db_name: str) -> dict[str, str]:
        """The variables deploy/dagster-postgres.yaml reads, for database ``db_name``."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": db_name,
        }

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def query(self, db_name: str, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=db_name
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


def _server_user() -> dict:
    """subprocess arguments that drop root: PostgreSQL refuses to run as root (CI runs as root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return {"user": name}
        except KeyError:
            continue
    pytest.fail("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL")


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory):
    """initdb a cluster, start it on a free port (unix socket in the cluster's folder), yield, then
    stop it and delete the cluster, also when the test failed."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("psycopg2 is missing: `.venv/bin/pip install -c requirements.lock -e '.[dev]'`")
    bin_dir = postgres_bin_dir()
    as_user = _server_user()
    # As root the cluster lives outside pytest's 0700 tmp tree, owned by the unprivileged user.
    base = Path(tempfile.mkdtemp(prefix="xreco-pg-")) if as_user else tmp_path_factory.mktemp("pg")
    data, sockets, pwfile = base / "data", base / "sock", base / "pwfile"
    sockets.mkdir()
    password = "xreco-test"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chmod(base, 0o755)
        for p in (base, sockets, pwfile):
            shutil.chown(p, user=as_user["user"])
    server = PostgresServer(free_port(), "xreco", password, bin_dir, sockets)
    log = base / "server.log"
    run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True, text=True, **as_user)  # noqa: E731
    try:
        try:
            run(
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                server.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            )
            opts = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {sockets} -c fsync=off"
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as e:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start: {e.cmd}\n{e.stdout}\n{e.stderr}\n{server_log}")
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                **as_user,
            )
        shutil.rmtree(base, ignore_errors=True)


def chromium_binary() -> str:
    """Debian's headless-capable Chromium, else fail with the install command."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"chromium not found on PATH: {INSTALL_HINT}")


def wait_for(predicate, timeout: float, what, interval: float = 0.5):
    """Poll ``predicate`` until it returns a truthy value; after ``timeout`` s fail naming ``what`` (a
    string, or a callable returning one, called then: a log tail as of the failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
