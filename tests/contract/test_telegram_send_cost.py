"""What one send costs the relay over aiogram: the answer's pydantic class is built once, not per paced send."""

from __future__ import annotations

import gc
import weakref

from aiogram.methods import Response
from aiogram.types import Message

from bots.telegram import TelegramBot, TelegramChannel
from services.messages import Rendered
from tests.support.telegram import STAFF


async def test_the_class_that_reads_a_sent_messages_answer_outlives_the_garbage_collector(fake_telegram, tmp_path):
    """pydantic keeps ``Response[Message]`` only weakly: without a strong reference every collection between paced
    sends threw it away and the next send built it again (about three quarters of a send's CPU)."""
    bot = TelegramBot("staff", STAFF, fake_telegram.base_url, None, tmp_path)  # type: ignore[arg-type]
    try:
        channel = TelegramChannel({"staff": bot})
        assert await channel.send("staff", "1001", Rendered("first"))
        reader = weakref.ref(Response[Message])
        gc.collect()
        assert reader() is not None, "Response[Message] was collected: the next send builds it again"
        assert await channel.send("staff", "1001", Rendered("second"))
        assert Response[Message] is reader()
    finally:
        await bot.close()
