//! hooktunnel: a stable public URL for a local app, with every webhook
//! captured, inspected and replayable.
//!
//! | module | role |
//! | --- | --- |
//! | [`cli`] | clap types: the command-line contract |
//! | [`config`] | settings from flags, env and the config file; paths |
//! | [`exchange`] | the domain record of one request/response |
//! | [`store`] | SQLite history (WAL) and its batching writer |
//! | [`forward`] | the one HTTP client that talks to the local app |
//! | [`agent`] | the WebSocket session with the relay |
//! | [`event`] | what the agent reports to its consumers |
//! | [`output`] | plain and NDJSON printers of those events |
//! | [`replay`] | re-sending stored requests through the forwarder |
//! | [`sanitize`] | escaping of captured text before it reaches a terminal |
//! | [`filter`] | the filter syntax shared by `requests`, bulk replay and the TUI |
//! | [`export`] | curl, HAR and JSON renderings of an exchange |
//! | [`verify`] | webhook signature schemes, pure functions |
//! | [`tui`] | the terminal inspector |
//! | [`web`] | the local web inspector and its ngrok-compatible and own HTTP APIs |
//! | [`logging`] | diagnostics to stderr, or to a file while the inspector runs |
//! | [`commands`] | one `run` per subcommand |

pub mod agent;
pub mod cli;
pub mod commands;
pub mod config;
pub mod event;
pub mod exchange;
pub mod export;
pub mod filter;
pub mod forward;
pub mod logging;
pub mod output;
pub mod replay;
pub mod sanitize;
pub mod store;
pub mod tui;
pub mod verify;
pub mod web;
