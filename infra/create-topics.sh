#!/usr/bin/env bash
# Creates the pipeline's topics on a real Kafka cluster with kafka-topics.sh (see infra/README.md).
set -euo pipefail

: "${BOOTSTRAP:?set BOOTSTRAP, e.g. broker1:9092}"
PARTITIONS="${PARTITIONS:-12}"
REPLICATION="${REPLICATION:-3}"
APP_ID="${APP_ID:-feed-processor}"
KAFKA_TOPICS="${KAFKA_TOPICS:-kafka-topics.sh}"

create() {
  local name="$1"; shift
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
    --partitions "$PARTITIONS" --replication-factor "$REPLICATION" "$@"
}

create social.follows
create social.posts
create feed.updates --config retention.ms=604800000
create pipeline.dead-letters --config retention.ms=1209600000
create "$APP_ID-follows-by-followee-repartition" --config retention.ms=86400000
create "$APP_ID-updates-by-recipient-repartition" --config retention.ms=86400000
for store in follower-index recent-posts post-ledger feed-entries feed-index feed-heads follows-positions author-positions recipient-positions; do
  create "$APP_ID-$store-changelog" --config cleanup.policy=compact
done
