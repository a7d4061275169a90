"""Relays one run to the page over a websocket; the run itself lives in usage/runs.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import aclosing

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from providers.base import Delta
from usage import access, fallback, live, runs
from usage.events import Ended
from usage.models import Run

# How long ask mode waits for an answer before it takes "no" for one.
ANSWER_TIMEOUT = 600
CANCEL_NOT_SENT = (
    '<div hx-swap-oob="beforeend:#run-{}-status"><p class="error" role="alert">The cancel could not be'
    " sent to the server running this run (Redis does not answer). Try again in a moment.</p></div>"
)
logger = logging.getLogger(__name__)


class RunConsumer(AsyncJsonWebsocketConsumer):
    # No channel of its own on the channel layer: a cancel reaches a run through its process's
    # listener (usage/live.py), so a page's socket waits on nothing in Redis and outlives an outage.
    channel_layer_alias = None
    task: asyncio.Task | None = None
    answer: asyncio.Future | None = None
    can_control = False

    async def connect(self) -> None:
        user = self.scope["user"]
        self.run = await runs.aget_for_user(user, self.scope["url_route"]["kwargs"]["run_id"])
        if self.run is None:
            await self.close()  # before accept(): the handshake is refused
            return
        # Whoever may see a run may watch it; only its owner or a team admin starts or cancels it.
        self.can_control = await sync_to_async(access.can_control)(user, self.run)
        await self.accept()

    async def receive_json(self, content: dict, **kwargs) -> None:  # ws-send: form fields + HEADERS
        if not self.can_control:
            return
        action = content.get("action")
        if action == "start" and self.task is None and self.run.status == Run.Status.PENDING:
            self.task = asyncio.create_task(self.relay())
        elif action == "cancel":
            # To the run, wherever it runs: this socket, another tab, another server process.
            try:
                await live.cancel(self.run, by=self.scope["user"].get_username())
            except Exception:  # noqa: BLE001 - Redis down: said on the page, the socket stays
                logger.exception("The cancel of run %s could not be sent", self.run.uuid)
                await self.send(text_data=format_html(CANCEL_NOT_SENT, self.run.uuid))
        elif action in ("switch", "stop") and self.answer is not None and not self.answer.done():
            self.answer.set_result(action == "switch")

    async def ask(self, question: fallback.Question) -> bool:
        self.answer = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(self.answer, ANSWER_TIMEOUT)
        except TimeoutError:
            return False

    async def relay(self) -> None:
        uuid = self.run.uuid
        async with aclosing(runs.stream(self.run, ask=self.ask)) as events:
            async for event in events:
                if isinstance(event, Delta):
                    # Escaped text, appended in place: no template lookup per token.
                    frame = '<span id="run-{}-output" hx-swap-oob="beforeend">{}</span>'
                    await self.send(text_data=format_html(frame, uuid, event.text))
                elif isinstance(event, fallback.Waiting | fallback.Question):
                    await self.send(text_data=await self.status_frame(event=event))
                else:  # the run started or ended: its status block is replaced
                    await self.send(
                        text_data=await self.status_frame(ended=event if isinstance(event, Ended) else None)
                    )

    async def status_frame(self, event: object = None, ended: Ended | None = None) -> str:
        context = {
            "run": self.run,
            "oob": True,
            "event": event,
            "ended": ended,
            "can_control": self.can_control,
        }
        return await asyncio.to_thread(render_to_string, "usage/_run_status.html", context)

    async def disconnect(self, code: int) -> None:
        if self.task is not None:  # a closed tab cancels the run (settled as cancelled)
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
