"""The consumer runner: feeds a ``ConsumerSpec`` events, exactly once in effect.

- ``tables``: the bookkeeping tables in each consumer's database (processed
  event ids, Kafka offsets, log positions, parked events) and their migrations;
- ``source``: what a source of events is (``Source``, ``SourceRecord``);
- ``loop``: ``ConsumerRunner``, the loop that applies batches, and its readiness;
- ``metrics``: its Prometheus metrics and running totals;
- ``embedded``: ``EmbeddedSource``, the event store's log read in-process;
- ``kafka_source``: ``KafkaSource``, a topic read by a consumer group, with its
  dead-letter producer and rebalance listener;
- ``parked``: ``interviewctl dlq``'s list, retry, skip and prune.
"""
