"""Writing usage rows and settling runs.

`record_usage()` charges one generation's tokens at the price in force, rolls it up by day in the same
transaction, then raises any budget alert the new spend crosses.

`settle(run)` writes a finished run's usage row, roll-up and final fields in one transaction, once per
run. When the database cannot take it (locked past the busy timeout, read-only, connection lost) it
is retried briefly; if the database stays down, the settlement goes to the spool (usage/spool.py)
and is written when the database is back: at start-up and every LLMHUB_SPOOL_REPLAY_SECONDS by each
server process, after the next settlement that does get through, and by `manage.py replay_spool`.
Never lost, never silent: each fault is logged, and the spool's size is shown to admins.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core import serializers
from django.db import DatabaseError, close_old_connections, connection, transaction

from accounts.models import Team, User
from llmhub import conf, instances, statements
from llmhub.database import UNAVAILABLE
from ops import observe
from providers import breaker
from providers.base import TokenCount
from providers.models import Price, ProviderModel, price_in_force
from providers.pricing import usage_cost
from providers.registry import registry
from usage import alerts, claiming, rollups, spool
from usage.models import CallKind, Run, UsageRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A settlement's claim on its run: the run's row is written only while `where` (plain SQL on
    it, with `params`) holds; when it does not, the run is not this settlement's and `taken()` is
    raised."""

    where: str
    params: list
    taken: Callable[[], Exception]
    # The provider that answered the run: its circuit closes with the settlement (providers/breaker.py).
    answered_by: str | None = None


# What running and settling a run change: a settlement writes these columns only, in one plain
# UPDATE (llmhub/statements.py). The others were written when it was created, or are changed by
# others meanwhile (a deleted user, automation or key leaves it with none) and must stay as they are.
SETTLED = (
    "status",
    "model_used",
    "max_cost_usd",
    "started_at",
    "first_token_at",
    "finished_at",
    "output",
    "answer",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "error_message",
    "error_action",
    "usage_warning",
    "reserved_usd",
    "reservation_expires_at",
)


@transaction.atomic(savepoint=False)  # inside a settlement: its failure fails the settlement
def record_usage(
    provider_id: str,
    model: str,
    tokens: TokenCount,
    source: str,
    run_id: str = "",
    team: Team | None = None,
    user: User | None = None,
    api_key=None,
    at: datetime | None = None,
    request_id: str = "",
    kind: str = CallKind.GENERATION,
    priced: tuple[Price | None, Decimal | None] | None = None,
) -> UsageRecord:
    """Record one generation (that happened `at`, default now). An unpriced model gets a null
    cost, never $0. `priced` is what priced() already answered for it, when the caller asked first."""
    record = _usage_row(
        provider_id, model, tokens, source, run_id, team, user, api_key, request_id, kind, priced, at
    )
    _save(record, team, api_key, at)
    return record


def _save(record: UsageRecord, team: Team | None, api_key, at: datetime | None) -> None:
    """The usage row written and rolled up, its alerts checked, in the caller's transaction."""
    statements.insert(record)  # as save() writes it, without composing the INSERT each time
    if at is not None:  # a spooled settlement counts on the day it happened, not the day it landed
        UsageRecord.objects.filter(pk=record.pk).update(created_at=at)
        record.created_at = at
    rollups.add(record)
    _alert(record, team, api_key)


def _usage_row(
    provider_id: str,
    model: str,
    tokens: TokenCount,
    source: str,
    run_id: str,
    team: Team | None,
    user: User | None,
    api_key,
    request_id: str,
    kind: str,
    priced: tuple[Price | None, Decimal | None] | None,
    at: datetime | None = None,
) -> UsageRecord:
    """The usage row of one generation, not saved yet."""
    price, cost = priced or _priced(provider_id, model, tokens, at)
    return instances.new(
        UsageRecord,
        provider_id=provider_id,
        model=model,
        run_id=run_id or uuid.uuid4().hex,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        reasoning_tokens=tokens.reasoning,
        cost_usd=cost,
        price=price,
        source=source,
        team=team,
        user=user,
        api_key=api_key,
        request_id=request_id,
        kind=kind,
    )


def _alert(record: UsageRecord, team: Team | None, api_key) -> None:
    """The budget alerts the usage row's spend crossed (read once it is rolled up)."""
    if team is not None and record.cost_usd:
        alerts.check(team, record.provider_id, api_key.pk if api_key else None)


arecord_usage = sync_to_async(record_usage)


def _priced(
    provider_id: str, model: str, tokens: TokenCount, at: datetime | None
) -> tuple[Price | None, Decimal | None]:
    """The model's price in force `at` (default now) and what the tokens cost at it (None: unpriced)."""
    row = registry.model_row(f"{provider_id}/{model}")  # with every price it had, from the snapshot
    price = price_in_force(row.prices.all(), at) if row is not None else None
    return price, usage_cost(price, tokens) if price is not None else None


def settle(run: Run, claim: Claim | None = None) -> bool:
    """Charge a finished run and save its final fields: True when written, False when the database
    stayed unavailable and the settlement was spooled instead (the run object is final either way).
    `claim` runs first in the same transaction: it writes the run's settled fields (given) and raises
    to stop a settlement that is not ours."""
    at = conf.now()
    retries, pause = conf.setting("LLMHUB_SETTLE_RETRIES"), conf.setting("LLMHUB_SETTLE_RETRY_SECONDS")
    for attempt in range(retries + 1):
        try:
            _write(run, claim=claim)
            break
        except UNAVAILABLE as fault:
            connection.close()  # reopened for the next try: a read-only or lost one never recovers
            if attempt == retries:
                postpone(run, at, reason=str(fault))
                return False
            logger.warning("Settling run %s failed (%s); retrying in %.2f s", run.uuid, fault, pause)
            time.sleep(pause)
            pause *= 3
        except Exception:
            if claim is not None and claim.answered_by:  # not settled here (taken): it still answered
                _note_answer(claim.answered_by)
            raise
    if spool.pending():
        wake_replayer()  # the database is back: spooled settlements need not wait for the timer
    return True


# Off the caller's thread, as a budget reservation: a settlement waiting for the write lock (or
# sleeping between retries) holds up nothing else. database_sync_to_async closes its connection.
asettle = database_sync_to_async(settle, thread_sensitive=False)


def postpone(run: Run, at: datetime | None = None, reason: str = "") -> None:
    """Spool the run's settlement without trying the database (which just failed)."""
    at = at or conf.now()
    entry = {"run": json.loads(serializers.serialize("json", [run]))[0], "at": at.isoformat()}
    try:
        spool.append(entry)
    except OSError:
        # Nowhere left to keep it: this log line is the record (an admin can charge it by hand).
        logger.critical(
            "Run %s could not be settled (%s) nor spooled to %s: %s, %s input and %s output tokens at %s",
            run.uuid,
            reason,
            spool.path(),
            run.model_used or run.model_requested,
            run.input_tokens,
            run.output_tokens,
            entry["at"],
            exc_info=True,
        )
        raise
    logger.error(
        "The database is unavailable (%s): run %s's settlement is spooled to %s and will be written "
        "when it is back (%d waiting)",
        reason or "not tried",
        run.uuid,
        spool.path(),
        spool.pending(),
    )


@transaction.atomic
def _write(run: Run, at: datetime | None = None, claim: Claim | None = None) -> bool:
    """The usage row, the run's real cost in place of its reservation, in one transaction; False
    when the run's usage row was already written (a replay, or a settlement that did commit before
    its connection was lost), so a run is never charged twice. The run's row is written first, in
    one UPDATE (the claim's, when there is one): the cost is priced before the usage row is written."""
    provider_id, _, model = (run.model_used or run.model_requested).partition("/")
    tokens = TokenCount(
        run.input_tokens or 0,
        run.output_tokens or 0,
        run.cache_read_tokens,
        run.cache_write_tokens,
        run.reasoning_tokens,
    )
    priced = _priced(provider_id, model, tokens, at) if tokens.input or tokens.output else None
    if priced is not None:
        run.cost_usd = priced[1]
    elif (
        row := ProviderModel.objects.filter(pk=run.model_used or run.model_requested).first()
    ) and row.current_price():
        run.cost_usd = Decimal("0")
    run.reserved_usd = run.reservation_expires_at = None
    settled = {name: getattr(run, name) for name in SETTLED}
    if claim is not None:
        # Its UPDATE locks the run's row and takes it out of STREAMING: settlements of a run queue
        # and only the first gets past it. No usage row can be there yet: every transaction that
        # writes one also ends the run's STREAMING (a claim, or the replay's UPDATE below).
        if priced is not None and statements.db().vendor == "postgresql":
            record = _usage_row(provider_id, model, tokens, *_charged(run), priced)
            failing = claiming.claim_and_record(run, settled, claim, record)
            if failing is None:
                raise claim.taken()
            _answered(claim, failing)
            _alert(record, run.team, run.api_key)
            statements.db().on_commit(partial(observe.run_finished, run), robust=True)
            return True
        _answered(claim, _claim(run, settled, claim))
        exists = True
    else:
        exists = Run.objects.select_for_update().filter(pk=run.pk).exists()
        if UsageRecord.objects.filter(run_id=str(run.uuid)).exists():
            return False
        if exists:
            statements.update(Run, run.pk, settled)
    if priced is not None:
        source, run_id, team, user, api_key, request_id, kind = _charged(run, exists)
        # record_usage() without its atomic(): in this transaction already, it would only look the
        # connection up twice (~20,000 instructions in a hop's thread).
        record = _usage_row(
            provider_id, model, tokens, source, run_id, team, user, api_key, request_id, kind, priced, at
        )
        _save(record, team, api_key, at)
    # Once committed: its metrics and log line (a failure there never undoes the settlement). On
    # the connection the settlement already looked up: transaction.on_commit() looks it up again.
    statements.db().on_commit(partial(observe.run_finished, run), robust=True)
    return True


def _claim(run: Run, settled: dict[str, Any], claim: Claim) -> bool:
    """The claim's UPDATE of the run (raises claim.taken() when it found no run to settle), then
    whether the provider that answered has a circuit to close. On SQLite a read of its own: read
    with the UPDATE (RETURNING EXISTS ...) it cost more instructions than apart (bench/instructions.py)."""
    if not statements.update(Run, run.pk, settled, claim.where, claim.params):
        raise claim.taken()
    return bool(claim.answered_by) and breaker.failing_now(claim.answered_by)


def _answered(claim: Claim, failing: bool) -> None:
    """The provider that answered had failures counted or its circuit open: they end once this
    settlement commits (read in its transaction, so a settlement of a healthy provider writes
    nothing more). Not in the transaction: a circuit that cannot be closed (its row locked past the
    timeout, say) must not undo a settlement, nor replace its error with its own."""
    if failing and claim.answered_by:
        transaction.on_commit(partial(_note_answer, claim.answered_by))


def _note_answer(provider_id: str) -> None:
    try:
        breaker.record_success(provider_id)
    except DatabaseError:
        logger.exception("Could not record that %s answered: its circuit stays as it was", provider_id)


def _charged(run: Run, exists: bool = True) -> tuple:
    """The usage row's source, run id, team, user, API key, request id and kind of call."""
    # A run with neither a user nor an API key came from the command line.
    source = UsageRecord.Source.API if run.api_key_id else UsageRecord.Source.RUN
    source = source if run.user_id or run.api_key_id else UsageRecord.Source.CLI
    team, user, api_key = (run.team, run.user, run.api_key) if exists else _survivors(run)
    return source, str(run.uuid), team, user, api_key, run.request_id, run.kind


def _survivors(run: Run) -> tuple[Team | None, User | None, None]:
    """A spooled run whose team was deleted meanwhile (its runs and keys with it): the provider was
    still paid, so its usage is kept, without the owners that are gone."""
    return None, User.objects.filter(pk=run.user_id).first(), None


def _apply(entry: dict) -> bool:
    run = next(serializers.deserialize("python", [entry["run"]])).object
    return _write(run, datetime.fromisoformat(entry["at"]))


def replay_spool() -> spool.Replayed:
    """Write the spooled settlements the database can take now (each exactly once)."""
    replayed = spool.replay(_apply)
    if replayed.written or replayed.skipped:
        logger.warning(
            "Spooled settlements replayed: %d written, %d already recorded, %d still waiting",
            replayed.written,
            replayed.skipped,
            replayed.left,
        )
    if replayed.left:
        connection.close()  # a connection that failed is reopened next time
    return replayed


_wakeup = threading.Event()


def wake_replayer() -> None:
    _wakeup.set()


def start_replaying(period: float | None = None) -> threading.Thread | None:
    """A daemon thread that replays the spool now, every `period` seconds (LLMHUB_SPOOL_REPLAY_SECONDS;
    0 starts none) and whenever a settlement got through while some waited. One per server process."""
    period = settings.LLMHUB_SPOOL_REPLAY_SECONDS if period is None else period
    if period <= 0:
        return None

    def replay_forever() -> None:
        while True:
            if spool.pending():
                try:
                    replay_spool()
                except Exception:
                    logger.exception("Replaying the settlement spool failed; trying again in %s s", period)
                finally:
                    close_old_connections()
            _wakeup.wait(period)
            _wakeup.clear()

    thread = threading.Thread(target=replay_forever, name="settlement-spool", daemon=True)
    thread.start()
    return thread
