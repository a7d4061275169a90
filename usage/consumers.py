"""Relays one run to the page over a websocket; the run itself lives in usage/runs.py."""

from __future__ import annotations

import asyncio
import contextlib

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from providers.base import Delta
from usage import runs
from usage.models import Run


class RunConsumer(AsyncJsonWebsocketConsumer):
    task: asyncio.Task | None = None
    closed = False

    async def connect(self) -> None:
        self.run = await runs.aget_for_user(self.scope["user"], self.scope["url_route"]["kwargs"]["run_id"])
        if self.run is None:
            await self.close()  # before accept(): the handshake is refused
            return
        await self.accept()

    async def receive_json(self, content: dict, **kwargs) -> None:  # ws-send: form fields + HEADERS
        action = content.get("action")
        if action == "start" and self.task is None and self.run.status == Run.Status.PENDING:
            self.task = asyncio.create_task(self.relay())
        elif action == "cancel" and self.task is not None:
            self.task.cancel()

    async def relay(self) -> None:
        uuid = self.run.uuid
        try:
            async for event in runs.stream(self.run):
                if isinstance(event, Delta):
                    # Escaped text, appended in place: no template lookup per token.
                    await self.send(text_data=format_html(
                        '<span id="run-{}-output" hx-swap-oob="beforeend">{}</span>', uuid, event.text))  # fmt: skip
                else:  # the run started or finished: its status block is replaced
                    await self.send(text_data=await self.status_frame())
        except asyncio.CancelledError:
            if not self.closed:
                await self.send(text_data=await self.status_frame())
            raise

    async def status_frame(self) -> str:
        return await asyncio.to_thread(
            render_to_string, "usage/_run_status.html", {"run": self.run, "oob": True}
        )

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.task is not None:  # a closed tab cancels the run
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
