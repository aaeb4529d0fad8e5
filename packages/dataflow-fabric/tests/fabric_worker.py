"""One fabric worker process for the multi-process tests (run as a script, not collected).

Environment: WORKER_DB (DataFlow URL), WORKER_NAME, WORKER_COORDINATION, WORKER_SCOPE,
WORKER_LEASE (seconds), WORKER_REFRESH_DELAY (seconds the product takes after reading).
Prints ``READY <port>`` once serving; SIGTERM stops it cleanly (the tests SIGKILL leaders).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from dataflow import DataFlow
from dataflow.fabric import ProductContext


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format=f"[{os.environ['WORKER_NAME']}] %(message)s")
    db = DataFlow(os.environ["WORKER_DB"], name=os.environ["WORKER_NAME"])

    @db.model
    class FabricOrder:
        qty: int

    delay = float(os.environ.get("WORKER_REFRESH_DELAY", "0"))

    @db.product("total", depends_on=["FabricOrder"], debounce=0)
    async def total(ctx: ProductContext) -> int:
        rows = await ctx.db.express.list("FabricOrder", limit=10_000)
        await asyncio.sleep(delay)  # a slow refresh: the tests kill the leader inside it
        return sum(int(row["qty"]) for row in rows)

    handle = await db.start(port=0, enable_writes=True,
                            coordination=os.environ["WORKER_COORDINATION"],
                            lease_ttl=float(os.environ["WORKER_LEASE"]),
                            coordination_scope=os.environ["WORKER_SCOPE"])
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print(f"READY {handle.port}", flush=True)
    await stopping.wait()
    await db.stop()
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
