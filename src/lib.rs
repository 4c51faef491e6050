//! taskrouter-tracer: records every Twilio TaskRouter webhook in an append-only, hash-chained
//! SQLite log and explains what happened to each task.
//!
//! Data flows one way:
//! `routes` (HTTP edge) → `taskrouter_protocol` (parse into TaskRouter's types) → `ingest`
//! (decide, queue) → `storage::writer` (the one write transaction) → `storage::event_log` (the
//! only writer of `events`) → `projections` (folds the writer drives after each append, through
//! `storage::follower::LogFollower`) → pages and reports (read `storage::requests` and the
//! projections).
//!
//! Around it: `cli` parses the command line into `settings`, `startup` builds the server from
//! them, `commands` runs each command; `history`, `connect`, `actions` and `alerts` talk to
//! TaskRouter through `taskrouter_client`; `demo` wires the tracer to `taskrouter_simulator`.

pub mod actions;
pub mod alerts;
pub mod cli;
pub mod commands;
pub mod connect;
pub mod demo;
pub mod head_deadline;
pub mod history;
pub mod ingest;
pub mod instructions;
pub mod metrics;
pub mod projections;
pub mod relay;
pub mod replay;
pub mod reports;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod taskrouter_client;
pub mod telemetry;
