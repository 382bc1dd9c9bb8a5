//! Delivery health over the history: is my webhook endpoint healthy?
//!
//! Pure logic, no I/O. The store fills the derived columns with [`derive`]
//! when an exchange is inserted and streams narrow [`Sample`]s from a
//! covering index into an [`Aggregator`]; `hooktunnel stats` prints the
//! [`Report`] with [`table`] or as JSON; `listen --alert` runs [`alert`]
//! rules over live exchanges.
//!
//! | module | role |
//! | --- | --- |
//! | [`path`] | folding `/orders/123` into `/orders/:n` |
//! | [`derive`] | provider, event type and failure cause of one exchange |
//! | [`refusal`] | the relay's refusal notes as stored rows |
//! | [`report`] | one-pass aggregation: counts, classes, causes, HDR percentiles, sparklines |
//! | [`table`] | the text table (sparkline per row) |
//! | [`alert`] | `error-rate>5%/5m` / `p95>2s/5m` rules as a state machine over time |

pub mod alert;
pub mod derive;
pub mod path;
pub mod refusal;
pub mod report;
pub mod table;

pub use derive::{Cause, Derived, derive};
pub use refusal::Refusal;
pub use report::{Aggregator, Dimension, RefusedSample, Report, Row, Sample, Section, Window};
