"""One place decides the events topic's layout: every service's settings read it
from the same variables."""

from __future__ import annotations

import pytest

from services.common.kafka import TopicLayout
from services.interviews.settings import RelaySettings
from services.notifications.settings import NotificationsSettings
from services.projections.settings import ProjectionsSettings


def test_every_process_that_may_create_the_topic_reads_the_same_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    wanted = TopicLayout(partitions=12, replication_factor=3)
    for settings in (RelaySettings(), ProjectionsSettings(), NotificationsSettings()):
        assert settings.topic_layout() == wanted, type(settings).__name__


def test_the_relay_s_former_variable_still_sets_the_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_TOPIC_PARTITIONS", raising=False)
    monkeypatch.setenv("RELAY_PARTITIONS", "5")
    assert ProjectionsSettings().topic_layout().partitions == 5
    assert RelaySettings().topic_layout().partitions == 5


def test_a_topic_without_partitions_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValueError, match="kafka_topic_partitions|KAFKA_TOPIC_PARTITIONS"):
        ProjectionsSettings()
