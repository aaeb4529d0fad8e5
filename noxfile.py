"""Developer sessions: tests per package x backend, lint, typecheck, bench, demo.

Packages are always installed from the workspace paths (a different ``dataflow-core``
exists on the public registry). Backend URLs come from the environment:
``DATAFLOW_POSTGRES_URL``, ``DATAFLOW_MYSQL_URL``, ``DATAFLOW_MONGO_URL`` (else a local test server).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

CORE = "./packages/dataflow-core[testkit,pydantic]"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.23", "hypothesis>=6", "hatchling>=1.20"]
BACKENDS = {
    "core": ["./packages/dataflow-sqlite"],
    "sqlite": ["./packages/dataflow-sqlite"],
    "postgres": ["./packages/dataflow-postgres[test]"],
    "mysql": ["./packages/dataflow-mysql"],
    "fabric": ["./packages/dataflow-sqlite", "./packages/dataflow-postgres[test]",
               "./packages/dataflow-fabric[test]"],
    "mongo": ["./packages/dataflow-mongo[test]"],
}
TEST_PATHS = {
    "core": ["tests"],
    "sqlite": ["packages/dataflow-sqlite/tests"],
    "postgres": ["packages/dataflow-postgres/tests"],
    "mysql": ["packages/dataflow-mysql/tests"],
    "fabric": ["packages/dataflow-fabric/tests"],
    "mongo": ["packages/dataflow-mongo/tests"],
}


def _present(backend: str) -> bool:
    return all(Path(p).exists() for p in TEST_PATHS[backend])


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def tests(session: nox.Session, backend: str) -> None:
    """Run one package's tests against its backend (contract kit included)."""
    if not _present(backend):
        session.error(f"no tests for {backend} in this checkout")
    session.install("-e", CORE, *[a for p in BACKENDS[backend] for a in ("-e", p)], *TEST_DEPS)
    session.run("pytest", *TEST_PATHS[backend], *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy>=1.10", "-e", CORE, "-e", "./packages/dataflow-sqlite",
                    "-e", "./packages/dataflow-fabric", "-e", "./packages/dataflow-mongo")
    session.run("mypy")


@nox.session
@nox.parametrize("backend", ["sqlite", "postgres", "mysql", "fabric", "mongo"])
def bench(session: nox.Session, backend: str) -> None:
    """Compare DataFlow with the raw driver in one run; prints ratios."""
    session.install("-e", CORE, *[a for p in BACKENDS[backend] for a in ("-e", p)])
    session.run("python", f"bench/bench_{backend}.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the demo scenario on embedded SQLite."""
    session.install("-e", "./packages/dataflow-core[sqlite]", "-e", "./packages/dataflow-sqlite")
    session.run("dataflow", "demo", *session.posargs)
