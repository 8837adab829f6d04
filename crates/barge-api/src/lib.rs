//! barge-api: the Docker Engine API (paths, JSON field names, stream framing, status codes and
//! error bodies as Docker's) served over a unix socket, on top of barge-engine.
