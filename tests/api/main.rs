//! Integration tests: the real server on a random port, a real SQLite file.

mod fixtures;
mod helpers;
mod log_integrity;
mod projections;
mod webhooks;
