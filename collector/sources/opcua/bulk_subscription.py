"""A subscription that hands over each publish response in one piece, and paces the next one.

asyncua's handler mode creates one asyncio task per notification; at ten thousand items that
is most of the client's time. This subclass takes the DataChangeNotification of a publish
response as a whole and calls one function with its items — cheap, and never blocking the
publish loop (the function must not block either).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asyncua import ua
from asyncua.common.subscription import Subscription

Items = Callable[[list[ua.MonitoredItemNotification]], None]
Status = Callable[[ua.StatusChangeNotification], None]
Pace = Callable[[], Awaitable[object]]


class _NoHandler:
    """Handler mode (no iterator queue); everything goes through `publish_callback`."""


class BulkSubscription(Subscription):  # type: ignore[misc]  # asyncua is untyped here
    def __init__(self, session: object, params: ua.CreateSubscriptionParameters,
                 on_items: Items, on_status: Status, pace: Pace | None = None) -> None:
        super().__init__(session, params, _NoHandler())
        self.on_items, self.on_status, self.pace = on_items, on_status, pace
        self.last_message_at = time.monotonic()  # any publish response, keep-alives included

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        now = time.monotonic()
        self.last_publish_at = self.last_message_at = now
        message = publish_result.NotificationMessage
        if message.NotificationData is None:
            return
        self.last_sequence_number = int(message.SequenceNumber)
        for notification in message.NotificationData:
            if isinstance(notification, ua.DataChangeNotification):
                self.on_items(notification.MonitoredItems)
            elif isinstance(notification, ua.StatusChangeNotification):
                self.on_status(notification)
        if self.pace is not None:
            # asyncua sends the next Publish request once this returns: waiting here for the
            # collector's queue to have room lets the server hold the values meanwhile
            await self.pace()
