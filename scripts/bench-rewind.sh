#!/usr/bin/env bash
# On-demand benchmark of rewind: a recovery in place to a time inside the rewind window (from the
# delayed copy, replaying only the gap) through the API, against a full restore from the base
# backup through the API and PostgreSQL alone restoring the same backup and replaying the same
# WAL; and what keeping the copy costs (build time, disk, CPU idle and under load). The whole
# stack runs inside `trove-bench rewind` on the real RabbitMQ, the control PostgreSQL and the
# object store the tests use (Swift's S3 API on loopback, started by scripts/swift-s3.sh).
# Flags pass through:
#   --scale N (100, about 1.5 GB)  --load-secs N (30)  --window-minutes N (30)  --clients N (4)
#   --poll-ms N (10)
# Runs as root. The binary stops its servers and removes its directories and objects at the end,
# also on error or Ctrl-C; if it is killed outright, scripts/bench-stack.sh stops what it announced.
exec "$(dirname "$0")/bench-stack.sh" rewind "$@"
