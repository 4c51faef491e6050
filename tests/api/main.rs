//! Integration tests: the real server on a random port, a real SQLite file.

mod alerts;
mod browser;
mod connect;
mod crash;
mod event_streams;
mod events_api;
mod fixtures;
mod forwarding;
mod helpers;
mod hostile;
mod inspector;
mod log_integrity;
mod official_client;
mod projections;
mod reports;
mod simulator;
mod storage_faults;
mod taskrouter_client;
mod twilio_faults;
mod web_actions;
mod web_browser;
mod web_pages;
mod web_session;
mod webhooks;
