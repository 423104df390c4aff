"""Fines: RegisterOffence -> notice issued, end to end over NATS with the register
simulator (owner lookup out through the outbox, the reply back through the inbound
consumer, the letter rendered, signed PAdES + XAdES and sent), in fines per second, against
SubmitReport -> delivered (partner receipt settled) in the same run, on the same platform,
the same exchange path and the same nats-server. Goal: a ratio of at least 0.5.

Both are driven through the services in-process (no gRPC in either), N items in flight,
after one of each has gone through (warm-up), on the database `make bench` names.
The owner reply commits OWNER_IDENTIFIED and the letter is written by the notice queue; the
PDFs are rendered, and their PAdES signatures prepared and finished, in two renderer
processes (JUSTICE_FINES__RENDER_PROCESSES=2, the default is 0: threads), started with the
inbound consumer; the key's signatures (PAdES, XAdES) stay in this process.

Measured 1 Dec on this 2-core machine while other engineers' installs, tests and benchmarks
ran (load average 9-17, so every rate is far below an idle machine's and single runs
swing widely). Ratio before (one message, render and sign at a time): 0.30, 0.49, 0.32;
with the queue, PDFs in threads: 0.44, 0.33; with two renderer processes: 0.63, 0.55,
0.37. This process's CPU per fine, less at the mercy of the load: 363 ms before, 265-269
ms after (renderer processes not counted), against 121-146 ms per report.

2 Dec: before this branch's changes (SQLite only, load ~5) 0.65 under py-spy, 88.9 ms per
fine against 43.7 per report; with PAdES prepared in the renderers (load ~8) 0.30 on SQLite,
0.48 on PostgreSQL. With also the renderers started with the consumer, the warm-up and the
inbound lanes, at load 3.7-5.9: SQLite 0.57, 0.33, 0.41, PostgreSQL 0.30, 0.40, 0.48. With
also the batch's processed check in one query and a statement less in RegisterOffence and
in the letter, at load 2.9-4.4: SQLite 0.40, 0.44, 0.50 (9.0-10.2 fines/s against 20.4-23.6
reports/s), PostgreSQL 0.33, 0.25, 0.29 (6.3-6.9 against 21.1-25.4); 53-61 ms of this
process's CPU per fine, 25-43 per report. PostgreSQL, inbound lanes 1 against 8 at once
(JUSTICE_EXCHANGE__INBOUND_CONCURRENCY, interleaved, load 5.9-7.4): 0.40, 0.36 against 0.40,
0.30, so the lanes' concurrency is not what holds the fines back there.

2 Dec, later (interleaved against 288e7ce, the same run, load from nothing else): the
letters' own line wrapping (fines/pdf.py) and the partner SDK publishing a batch's replies
with its receipt at once, 0.43/0.45/0.42 -> 0.49/0.48/0.55 on SQLite; with also the owner
reply's reads through the plain driver and the fines' plain INSERT/UPDATE, SQLite 0.38-0.47
-> 0.63-0.71 (this process's CPU per fine 32-36 -> 21-24 ms, a report's 19-25) and
PostgreSQL 0.40-0.44 -> 0.62-0.64 (37-39 -> 28-29 ms).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from justice.app import Application, build
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.fines.model import FineState
from justice.partner.client import ProcessedLog, listen
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.config import FineRules
from justice.reports.model import ReportState
from tests.benchmarks.figures import Figure
from tests.benchmarks.platform_process import bench_database
from tests.builders import content
from tests.exchange_env import exchange_settings, nats_with_partners, partner_record, partner_side
from tests.fines_env import MAIL_HOUSE, PARTNER_IDS, offence, register_partners, running_partners

PROSECUTOR = "prosecutor-antwerp"
ITEMS = 100


async def _until(app: Application, check: object, names: list[str]) -> None:
    """Until every item passes `check`. Items finish about in order, so each poll looks at
    the oldest unfinished one only: reading all of them every 20 ms took a tenth of the
    process's CPU from the path being measured."""
    pending = list(names)
    while pending:
        while pending and await check(app, pending[0]):  # type: ignore[operator]
            pending.pop(0)
        if pending:
            await asyncio.sleep(0.02)


async def _delivered(app: Application, name: str) -> bool:
    state = (await app.reports.get(name)).state
    return state in (ReportState.DELIVERED, ReportState.ACKNOWLEDGED)


async def _noticed(app: Application, name: str) -> bool:
    return (await app.fines.service.get(name)).state is FineState.NOTICE_SENT


async def _warm_up(app: Application) -> None:
    """One report delivered and one fine noticed before anything is timed: the renderer
    processes have started (the platform starts them with its inbound consumer) and every
    path has run once, so neither figure pays a first-time cost the other does not."""
    draft = await app.reports.create("officer-1001", content(), "")
    await app.reports.sign("officer-1001", draft.name)
    await app.reports.submit("officer-1001", draft.name, PROSECUTOR)
    fine = await app.fines.service.register(offence(), "")
    await _until(app, _delivered, [draft.name])
    await _until(app, _noticed, [fine.name])


async def _reports_per_second(app: Application) -> float:
    names = []
    for _ in range(ITEMS):  # drafted and signed beforehand: only submission is timed
        draft = await app.reports.create("officer-1001", content(), "")
        await app.reports.sign("officer-1001", draft.name)
        names.append(draft.name)
    started, cpu = time.perf_counter(), time.process_time()
    for name in names:
        await app.reports.submit("officer-1001", name, PROSECUTOR)
    await _until(app, _delivered, names)
    _cpu_per_item("report", cpu)
    return ITEMS / (time.perf_counter() - started)


async def _fines_per_second(app: Application) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    names = [(await app.fines.service.register(offence(), "")).name for _ in range(ITEMS)]
    await _until(app, _noticed, names)
    _cpu_per_item("fine", cpu)
    return ITEMS / (time.perf_counter() - started)


def _cpu_per_item(what: str, since: float) -> None:
    """This process's CPU (all threads; not the renderer processes) per item: less at the
    mercy of a shared machine than the rates, and where the fines' cost sits."""
    print(f"{what}: {(time.process_time() - since) * 1000 / ITEMS:,.1f} ms CPU each")


async def _run(state: Path) -> tuple[float, float]:
    pki = DevPki(state / "pki", passphrase=PKI_PASSPHRASE)
    pki.ensure()
    with (
        nats_with_partners(state / "nats", (*PARTNER_IDS, PROSECUTOR)) as nats,
        bench_database(state) as database_url,
    ):
        settings = exchange_settings(
            pki,
            nats,
            state / "app",
            database_url,
            fines=FineRules(
                notice_partner=MAIL_HOUSE, scheduler_interval_seconds=0, render_processes=2
            ),
        )
        app = await build(settings)
        try:
            await register_partners(app, pki)
            await app.exchange.service.create_partner(partner_record(pki, PROSECUTOR))
            prosecutor = await partner_side(pki).connect(nats, PROSECUTOR)
            stop = asyncio.Event()
            listener = asyncio.create_task(
                listen(prosecutor, ProsecutorSimulator(prosecutor).handle, ProcessedLog(), stop)
            )
            try:
                async with running_partners(pki, nats):
                    await _warm_up(app)
                    reports = await _reports_per_second(app)
                    fines = await _fines_per_second(app)
            finally:
                stop.set()
                await listener
                await prosecutor.close()
        finally:
            await app.close()
    print(f"fines {fines:,.1f}/s; reports {reports:,.1f}/s")
    return fines, reports


def main() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        fines, reports = asyncio.run(_run(Path(tmp)))
    return [
        Figure(
            f"RegisterOffence -> notice issued over NATS ({ITEMS} fines)",
            fines,
            "/s",
            f"SubmitReport -> delivered ({ITEMS} reports)",
            reports,
            goal=0.5,
        )
    ]
