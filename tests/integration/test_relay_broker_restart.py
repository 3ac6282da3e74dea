"""The broker goes away mid-stream and comes back: nothing is lost, and the relay
and the consumer recover on their own (no restart of either).

This stops the shared local broker (scripts/services.sh), so it runs after every
other test (marker ``runs_last``) and always starts the broker again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.db import create_engine
from services.common.runner.kafka_source import KafkaSource
from services.common.runner.loop import ConsumerRunner
from services.interviews.bootstrap import InterviewsContainer, RelayProcess
from services.interviews.settings import InterviewsSettings, RelaySettings
from tests.conftest import TEST_SECRET
from tests.support.services import infrastructure
from tests.support.waiting import Ticks, wait_until

from .eventflow import (
    TEST_LAYOUT,
    Workload,
    check_exactly_once_in_order,
    effects,
    expected_events,
    recording_spec,
    topic_cleanup,
    unique_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.runs_last]


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    yield from topic_cleanup(kafka_bootstrap, unique_topic("restart"))


def test_broker_restart_mid_stream_loses_nothing_and_the_relay_recovers_by_itself(
    postgres_url: str, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    container = InterviewsContainer(
        InterviewsSettings(database_url=postgres_url, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    app = container.interviews()
    settings = RelaySettings(
        database_url=postgres_url,
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka_bootstrap,
        EVENTS_TOPIC=topic,
        RELAY_MAX_BACKOFF_SECONDS=2.0,
    )
    relay = RelayProcess(app, settings).start()
    engine = create_engine(postgres_url, tmp_path / "unused.sqlite")
    runner = ConsumerRunner(
        recording_spec(engine, "restart"),
        KafkaSource(kafka_bootstrap, topic, layout=TEST_LAYOUT),
        max_backoff=2.0,
    ).start()
    workload = Workload(app)
    commands = None
    try:
        assert runner.wait_opened(30)
        commands = workload.in_background(900, 60.0)
        assert wait_until(lambda: len(effects(engine, "restart")) > 50, 30)
        stats = relay.relay.stats
        rounds = Ticks.install(relay.relay, "_step")  # the relay's loop calls it each round

        def attempts() -> int:
            """The relay's rounds: those that finished, and those that failed (a send
            refused, or no producer to be had) and made it reset and back off."""
            return len(rounds) + stats.errors

        infrastructure("stop-kafka")
        # Acknowledgements that arrived before the stop are settled by the next rounds.
        settled = attempts() + 2
        wait_until(lambda: attempts() >= settled, 60, what="2 relay rounds after the stop")
        published_while_down, mark = stats.published, attempts()
        # The relay goes on trying (sending the workload's new events, or failing and
        # backing off), and the broker acknowledges none of it.
        wait_until(lambda: attempts() >= mark + 5, 90, what="5 relay rounds while it is down")
        assert stats.published == published_while_down, "nothing is acknowledged while down"
        assert relay._thread is not None and relay._thread.is_alive()
        infrastructure("start-kafka")
        commands.join()

        expected = expected_events(app)
        assert wait_until(lambda: len(effects(engine, "restart")) >= len(expected), 120)
        check_exactly_once_in_order(effects(engine, "restart"), expected)
        assert relay._thread is not None and relay._thread.is_alive(), "the same relay recovered"
    finally:
        workload.stop(commands)
        infrastructure("start-kafka")  # whatever happened, leave the broker running
        runner.stop()
        relay.stop()
        runner.join(15)
        engine.dispose()
        container.close()
