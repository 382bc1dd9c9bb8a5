//! The end-to-end suite, one binary (as ripgrep's `tests/`): real relay,
//! real agent, real local app and the real `hooktunnel` binary on loopback.
//! Every module shares [`support`]; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod agent_cli;
mod capture;
mod cli;
mod cluster;
mod delivery;
mod e2e;
mod history;
mod install;
mod metrics;
mod rules;
mod security;
mod sessions;
mod signatures;
mod stats;
mod streaming;
mod tui_tmux;
mod tunnels;
mod web;
mod web_browser;
