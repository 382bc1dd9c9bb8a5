//! hooktunnel: a stable public URL for a local app, with every webhook
//! captured, inspected and replayable.
//!
//! | module | role |
//! | --- | --- |
//! | [`cli`] | clap types: the command-line contract |
//! | [`config`] | settings from flags, env and the config file; paths |
//! | [`exchange`] | the domain record of one request/response |
//! | [`capture`] | the capture limit: bodies kept up to it, size and SHA-256 beyond |
//! | [`clock`] | the wall clock (`now_ms`) and its RFC 3339 rendering |
//! | [`form`] | form-urlencoded decoding of bodies and query strings |
//! | [`error_chain`] | one-line root cause of an error chain |
//! | [`store`] | SQLite history (WAL) and its batching writer |
//! | [`forward`] | the one HTTP client that talks to the local app |
//! | [`json`] | JSON output with terminal-safe strings (C1 and DEL escaped) |
//! | [`agent`] | the WebSocket session with the relay |
//! | [`event`] | what the agent reports to its consumers |
//! | [`output`] | plain and NDJSON printers of those events |
//! | [`private`] | owner-only directories and files, whatever the umask |
//! | [`running`] | the state file of a running `listen`, read by `status` and `trigger --tunnel` |
//! | [`replay`] | re-sending stored requests through the forwarder |
//! | [`rules`] | traffic rules: edge rules sent to the relay, routes/header edits/mocks/faults applied by the agent |
//! | [`editor`] | editing a request in `$VISUAL`/`$EDITOR` before a replay |
//! | [`secrets`] | the one lookup of signature secrets (flags, env, config) |
//! | [`mask`] | secret header values masked for display (never in storage) |
//! | [`pretty`] | bounded JSON pretty-printing (inspector and `show`) |
//! | [`sanitize`] | escaping of captured text before it reaches a terminal |
//! | [`filter`] | the filter syntax shared by `requests`, bulk replay and the TUI |
//! | [`export`] | curl, HAR and JSON renderings of an exchange |
//! | [`stats`] | delivery health: path folding, causes, percentiles, alert rules |
//! | [`verify`] | webhook signature schemes, pure functions |
//! | [`tui`] | the terminal inspector |
//! | [`web`] | the local web inspector and its ngrok-compatible and own HTTP APIs |
//! | [`logging`] | diagnostics to stderr, or to a file while the inspector runs |
//! | [`commands`] | one `run` per subcommand |

pub mod agent;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod editor;
pub mod error_chain;
pub mod event;
pub mod exchange;
pub mod export;
pub mod filter;
pub mod form;
pub mod forward;
pub mod json;
pub mod logging;
pub mod mask;
pub mod output;
pub mod pretty;
pub mod private;
pub mod replay;
pub mod rules;
pub mod running;
pub mod sanitize;
pub mod secrets;
pub mod stats;
pub mod store;
pub mod tui;
pub mod verify;
pub mod web;
pub mod websocket;
