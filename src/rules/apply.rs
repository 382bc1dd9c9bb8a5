//! Carrying out [`AgentRules`] for one request: pick the route's forwarder,
//! wait an injected delay, answer a fault or a mock, else forward with the
//! edited headers. The stored request stays what the sender sent; answers
//! hooktunnel made itself are marked with `x-hooktunnel-error`
//! (`injected`/`mocked`) and [`INJECTED_HEADER`].

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hooktunnel_protocol::{self as protocol, ERROR_HEADER, Header, HttpErrorCode};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

use super::{AgentRules, Decision, FaultKind, Mock};
use crate::exchange::ExchangeResponse;
use crate::forward::{ForwardOptions, Forwarded, Forwarder, Outgoing};

/// Marks an answer a fault or a mock made: `status`, `drop` or `mock`.
pub const INJECTED_HEADER: &str = "x-hooktunnel-injected";

/// Rules plus one forwarder per distinct route target.
pub struct RuleSet {
    rules: AgentRules,
    /// Parallel to `rules.routes`; routes to the same target share a client.
    forwarders: Vec<Forwarder>,
    rng: Mutex<StdRng>,
}

/// What [`RuleSet::forward`] did.
pub struct Routed {
    /// The answer (the app's, or hooktunnel's own).
    pub forwarded: Forwarded,
    /// Base URL of the target the request went to (or would have).
    pub target: String,
    /// An injected drop: the sender must get no answer at all.
    pub dropped: bool,
}

impl RuleSet {
    /// Builds the forwarders; `seed` makes fault injection reproducible.
    pub fn new(
        rules: AgentRules,
        timeout: Duration,
        options: &ForwardOptions,
        seed: Option<u64>,
    ) -> Self {
        let mut by_target: Vec<(String, Forwarder)> = Vec::new();
        let forwarders = rules
            .routes
            .iter()
            .map(|route| {
                let base = route.target.base_url();
                if let Some((_, f)) = by_target.iter().find(|(b, _)| *b == base) {
                    return f.clone();
                }
                let f = Forwarder::with_options(route.target.clone(), timeout, options);
                by_target.push((base, f.clone()));
                f
            })
            .collect();
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::seed_from_u64(rand::random()),
        };
        Self {
            rules,
            forwarders,
            rng: Mutex::new(rng),
        }
    }

    fn decide(&self, request: &protocol::Request) -> Decision<'_> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        self.rules.decide(
            &request.method,
            &request.target,
            &request.headers,
            &mut *rng,
        )
    }

    /// Applies the rules to `request` and forwards it (through `default`
    /// when no route matches).
    pub async fn forward(&self, default: &Forwarder, request: &protocol::Request) -> Routed {
        if self.rules.is_empty() {
            return Routed {
                forwarded: default.forward(outgoing(request, None)).await,
                target: default.target().base_url(),
                dropped: false,
            };
        }
        let decision = self.decide(request);
        let forwarder = decision
            .route
            .and_then(|i| self.forwarders.get(i))
            .unwrap_or(default);
        let target = forwarder.target().base_url();
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        let waited = u64::try_from(decision.delay.as_micros()).unwrap_or(u64::MAX);
        let own = |response: ExchangeResponse, error: String, dropped: bool| Routed {
            forwarded: Forwarded {
                response,
                error: Some(error),
                duration_us: waited,
            },
            target: target.clone(),
            dropped,
        };
        match decision.fault {
            Some(FaultKind::Status(status)) => {
                return own(
                    injected(
                        status,
                        "status",
                        "hooktunnel: injected fault (--inject status)\n",
                    ),
                    format!("injected: status {status} (--inject); the app never saw it"),
                    false,
                );
            }
            Some(FaultKind::Drop) => {
                return own(
                    injected(504, "drop", "hooktunnel: injected drop (--inject drop)\n"),
                    "injected: dropped (--inject); no answer was sent, the app never saw it".into(),
                    true,
                );
            }
            Some(FaultKind::Delay(_)) | None => {}
        }
        if let Some(mock) = decision.mock {
            let mut response = mocked(mock);
            self.rules
                .edit_response(&request.target, &mut response.headers);
            return Routed {
                forwarded: Forwarded {
                    response,
                    error: None,
                    duration_us: waited,
                },
                target,
                dropped: false,
            };
        }
        let edited = (!self.rules.edits.is_empty())
            .then(|| self.rules.edit_headers(&request.target, &request.headers));
        let mut forwarded = forwarder
            .forward(outgoing(request, edited.as_deref()))
            .await;
        forwarded.duration_us = forwarded.duration_us.saturating_add(waited);
        if let Some(mock) = decision.fallback
            && app_down(&forwarded.response)
        {
            let why = forwarded.error.take().unwrap_or_default();
            forwarded.response = mocked(mock);
            forwarded.error = Some(format!("{why}; answered by --mock when-app-down"));
        }
        // Edits of the answer: the sender and the history get the edited one.
        self.rules
            .edit_response(&request.target, &mut forwarded.response.headers);
        Routed {
            forwarded,
            target,
            dropped: false,
        }
    }
}

fn outgoing<'a>(request: &'a protocol::Request, headers: Option<&'a [Header]>) -> Outgoing<'a> {
    Outgoing {
        method: &request.method,
        path: &request.target,
        headers: headers.unwrap_or(&request.headers),
        body: request.body.clone(),
    }
}

/// True when hooktunnel answered because the app could not be reached.
fn app_down(response: &ExchangeResponse) -> bool {
    response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case(ERROR_HEADER)
            && h.value == HttpErrorCode::LocalUnreachable.as_str().as_bytes()
    })
}

fn injected(status: u16, what: &'static str, body: &'static str) -> ExchangeResponse {
    ExchangeResponse {
        status,
        headers: vec![
            Header::new("content-type", "text/plain; charset=utf-8"),
            Header::new(ERROR_HEADER, HttpErrorCode::Injected.as_str()),
            Header::new(INJECTED_HEADER, what),
        ],
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn mocked(mock: &Mock) -> ExchangeResponse {
    let mut headers = vec![
        Header::new("content-type", mock.content_type),
        Header::new(ERROR_HEADER, HttpErrorCode::Mocked.as_str()),
        Header::new(INJECTED_HEADER, "mock"),
    ];
    if matches!(mock.status, 204 | 304) {
        headers.remove(0);
    }
    ExchangeResponse {
        status: mock.status,
        headers,
        body: if matches!(mock.status, 204 | 304) {
            Bytes::new()
        } else {
            mock.body.clone()
        },
    }
}
