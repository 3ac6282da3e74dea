"""SIGKILL at random moments, everywhere, while at least 2,000 HTTP commands flow.

The command API, the relay, the projections consumer, the notifications
consumer and the delivery worker each run as their own OS process; each is
killed (no warning, no clean-up) four or five times, always mid-stream (after
it made progress since its last start), and started again at once. The load
sends every command with an ``Idempotency-Key`` and repeats it until answered,
as a real client would. Afterwards nothing may be lost or have happened twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from services.notifications.bootstrap import NotificationsContainer
from services.notifications.rules import NOTIFICATION_TYPES
from services.notifications.settings import NotificationsSettings
from tests.conftest import TEST_SECRET
from tests.support.notifications import WebhookReceiver
from tests.support.waiting import holds_within, wait_until

from .checks import check_everything
from .harness import TALLY, Db, HttpCommands, Platform, Service

pytestmark = [pytest.mark.reliability, pytest.mark.kafka]

COMMANDS = 2000
RATE = 40.0  # commands per second: the load lasts long enough for every kill
KILLS = 22  # 4 or 5 for each of the 5 processes


class Killer(threading.Thread):
    """Kills one service ``kills`` times, each time once it made progress since its
    (re)start and then a random delay in ``pause`` seconds; restarts it at once."""

    def __init__(
        self,
        service: Service,
        progress: Callable[[], int],
        rng: random.Random,
        kills: int,
        pause: tuple[float, float],
    ) -> None:
        super().__init__(name=f"killer-{service.name}", daemon=True)
        self.service, self.progress, self.rng = service, progress, rng
        self.kills, self.pause = kills, pause
        self.halt = threading.Event()
        self.failure: str | None = None
        self.progress_at_kills: list[int] = []

    @property
    def satisfied(self) -> bool:
        return self.service.kills >= self.kills

    def safe_progress(self) -> int:
        try:
            return self.progress()
        except Exception:  # its tables may not exist yet
            return -1

    def run(self) -> None:
        while not self.halt.is_set() and not self.satisfied:
            before = self.safe_progress()
            if not holds_within(lambda b=before: self.safe_progress() > b, 60, 0.02):
                self.failure = f"{self.service.name} made no progress in 60s"
                return
            if self.halt.wait(self.rng.uniform(*self.pause)):
                return
            self.progress_at_kills.append(self.safe_progress())
            self.service.kill()
            self.service.start()


def test_sigkill_of_every_process_mid_stream_loses_nothing_and_does_nothing_twice(
    platform: Platform,
) -> None:
    receiver = WebhookReceiver().start()
    assert receiver.server is not None
    receiver.server.handle_error = lambda *_: None  # type: ignore[method-assign] # killed senders
    api = platform.interviews_api()
    relay = platform.relay()
    projections = platform.projections_consumer()
    consumer = platform.notifications_consumer()
    delivery = platform.delivery_worker()
    views = platform.projections_api(consumer=False)  # read-only: to compare the views

    load = HttpCommands(lambda: api.url, threads=6, seed=3)
    # Every user gets a webhook, so every notification is also delivered.
    notifications = NotificationsContainer(
        NotificationsSettings(
            database_url=platform.notifications_db,
            data_dir=platform.tmp,
            auth_secret=TEST_SECRET,
            webhook_allowed_hosts="127.0.0.1",
        )
    )
    try:
        for user in load.users:
            notifications.inbox().register_webhook(
                user, receiver.url, "s" * 24, list(NOTIFICATION_TYPES)
            )
    finally:
        notifications.close()

    iv, vw, nt = Db(platform.interviews_db), Db(platform.views_db), Db(platform.notifications_db)
    processed = 'SELECT count(*) FROM processed_events WHERE "group" = :g'
    # (service, kills, its progress, seconds to wait after progress before the kill)
    plan: list[tuple[Service, int, Callable[[], int], tuple[float, float]]] = [
        (api, 4, lambda: len(load.acks), (1.0, 6.0)),  # each restart stalls the load ~2 s
        (
            relay,
            5,
            lambda: iv.scalar(
                "SELECT coalesce(max(position), 0) FROM relay_position WHERE topic = :t",
                t=platform.topic,
            ),
            (0.05, 4.0),
        ),
        # A consumer's restart waits out the dead member's session (~10 s) first.
        (projections, 4, lambda: vw.scalar(processed, g=platform.projections_group), (0.05, 1.5)),
        (consumer, 4, lambda: nt.scalar(processed, g=platform.notifications_group), (0.05, 1.5)),
        (
            delivery,
            5,
            lambda: nt.scalar(
                "SELECT count(*) FROM notification_deliveries WHERE status = 'delivered'"
            ),
            (0.05, 4.0),
        ),
    ]
    rng = random.Random(20261125)
    killers = [
        Killer(service, measure, random.Random(rng.random()), kills, pause)
        for service, kills, measure, pause in plan
    ]
    started = time.monotonic()
    try:
        platform.start()
        traffic = load.in_background(COMMANDS * 3, RATE)
        for killer in killers:
            killer.start()
        # The load goes on until it sent its 2,000 commands and every killer had its kills.
        wait_until(
            lambda: (
                not traffic.is_alive()
                or load.failures
                or (load.sent >= COMMANDS and all(k.satisfied or k.failure for k in killers))
            ),
            3 * COMMANDS / RATE + 600,
            0.2,
            what="the load and every killer to finish",
        )
        load.stop()
        traffic.join(180)
        for killer in killers:
            killer.halt.set()
            killer.join(60)
        load_seconds = time.monotonic() - started
        assert not load.failures, f"commands refused: {load.failures[:5]}"
        failures = [k.failure for k in killers if k.failure]
        assert not failures, failures

        kills = {k.service.name: k.service.kills for k in killers}
        TALLY.add(acknowledged=len(load.acks))
        found, _ = check_everything(
            platform,
            load.acks,
            views_api=views.url,
            webhook_users=set(load.users),
            webhook_calls=receiver.received,
        )
        server_errors = platform.server_errors() + sum(
            n for status, n in load.answers.items() if status >= 500
        )
        TALLY.add(server_errors=server_errors)
        print(
            f"crashes: {len(load.acks)} commands acknowledged in {load_seconds:.0f}s "
            f"({load.transport_errors} connection failures retried), kills {kills}, "
            f"{found.facts}"
        )
        assert len(load.acks) >= COMMANDS
        assert all(k.satisfied for k in killers) and sum(kills.values()) >= KILLS >= 20
        assert all(k.service.alive() for k in killers), "a restarted process died by itself"
        for killer in killers:  # each kill left work to do after it: it was mid-stream
            assert killer.progress_at_kills[-1] < killer.progress(), killer.service.name
        assert server_errors == 0, platform.logs()
        found.assert_clean()
    finally:
        load.stop()
        for killer in killers:
            killer.halt.set()
        for db in (iv, vw, nt):
            db.close()
        receiver.stop()
