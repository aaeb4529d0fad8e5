"""Install profiles: wheels built into a local wheelhouse install into a fresh virtualenv
with ``dataflow-core[sqlite]`` and nothing fetched from a package index, and run a model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import asyncio, dataflow
    from dataflow import DataFlow
    db = DataFlow()
    @db.model
    class Book:
        title: str
        pages: int = 0
    async def main():
        b = await db.express.create("Book", {"title": "Dune", "pages": 412})
        got = await db.express.read("Book", b["id"])
        print(got["title"], got["pages"], dataflow.__file__)
        await db.close()
    asyncio.run(main())
""")


def test_fresh_venv_installs_core_with_sqlite_extra_from_wheelhouse(tmp_path: Path) -> None:
    house = tmp_path / "wheelhouse"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(house),
                    str(ROOT / "packages/dataflow-core"), str(ROOT / "packages/dataflow-sqlite")],
                   check=True, timeout=300)
    # third-party dependencies come from the registry into the wheelhouse, never our names
    subprocess.run([*pip, "download", "-d", str(house), "aiosqlite>=0.20", "pluggy>=1.3"],
                   check=True, timeout=300)
    names = sorted(p.name.split("-")[0] for p in house.iterdir())
    assert "dataflow_core" in names and "dataflow_sqlite" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                    "--no-index", "--find-links", str(house), "dataflow-core[sqlite]"],
                   check=True, timeout=300)
    out = subprocess.run([str(py), "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    title, pages, location = out.stdout.split()
    assert (title, pages) == ("Dune", "412")
    assert location.startswith(str(env_dir))  # the wheel, not the workspace source
