//! barge-engine: containers, volumes, logs, events, stats, restart policies, health checks and
//! the on-disk state; composes barge-runtime, barge-image, barge-build and barge-network.
