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

use super::{AgentRules, FaultKind, Mock};
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
    /// An injected drop: the sender must get no answer at all.
    pub dropped: bool,
}

/// hooktunnel's own answer instead of the app's (a fault or a mock).
pub struct OwnAnswer {
    /// What the sender gets (unless `dropped`) and the history stores.
    pub response: ExchangeResponse,
    /// The history's error text (injected faults).
    pub error: Option<String>,
    /// An injected drop: no answer at all.
    pub dropped: bool,
}

/// What to do with one request, decided before any byte reaches the app.
pub struct Plan<'a> {
    /// The route's client, or the default one.
    pub forwarder: &'a Forwarder,
    /// The request headers the app gets, when edits change them.
    pub headers: Option<Vec<Header>>,
    /// Injected delay before anything else.
    pub delay: Duration,
    /// Answer this instead of asking the app.
    pub own: Option<OwnAnswer>,
    /// A `when-app-down` mock.
    pub fallback: Option<&'a Mock>,
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

    /// The base URL of the route a request takes (`None`: the default target).
    pub fn target_for(&self, method: &str, target: &str, headers: &[Header]) -> Option<String> {
        let path = super::path_of(target);
        self.rules
            .routes
            .iter()
            .find(|r| r.matches(method, path, headers))
            .map(|r| r.target.base_url())
    }

    /// Decides route, header edits, delay, fault and mock for `request`
    /// (its head is enough: bodies are never looked at).
    pub fn plan<'a>(&'a self, default: &'a Forwarder, request: &protocol::Request) -> Plan<'a> {
        if self.rules.is_empty() {
            return Plan {
                forwarder: default,
                headers: None,
                delay: Duration::ZERO,
                own: None,
                fallback: None,
            };
        }
        let decision = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            self.rules.decide(
                &request.method,
                &request.target,
                &request.headers,
                &mut *rng,
            )
        };
        let forwarder = decision
            .route
            .and_then(|i| self.forwarders.get(i))
            .unwrap_or(default);
        let own = match decision.fault {
            Some(FaultKind::Status(status)) => Some(OwnAnswer {
                response: injected(
                    status,
                    "status",
                    "hooktunnel: injected fault (--inject status)\n",
                ),
                error: Some(format!(
                    "injected: status {status} (--inject); the app never saw it"
                )),
                dropped: false,
            }),
            Some(FaultKind::Drop) => Some(OwnAnswer {
                response: injected(504, "drop", "hooktunnel: injected drop (--inject drop)\n"),
                error: Some(
                    "injected: dropped (--inject); no answer was sent, the app never saw it".into(),
                ),
                dropped: true,
            }),
            Some(FaultKind::Delay(_)) | None => decision.mock.map(|mock| {
                let mut response = mocked(mock);
                self.rules
                    .edit_response(&request.target, &mut response.headers);
                OwnAnswer {
                    response,
                    error: None,
                    dropped: false,
                }
            }),
        };
        Plan {
            forwarder,
            headers: (!self.rules.edits.is_empty())
                .then(|| self.rules.edit_headers(&request.target, &request.headers)),
            delay: decision.delay,
            own,
            fallback: decision.fallback,
        }
    }

    /// The answer after the app was asked: a `when-app-down` mock replaces
    /// hooktunnel's 502, and response edits apply.
    pub fn after(&self, plan: &Plan<'_>, target: &str, forwarded: &mut Forwarded) {
        if let Some(mock) = plan.fallback
            && app_down(&forwarded.response)
        {
            let why = forwarded.error.take().unwrap_or_default();
            forwarded.response = mocked(mock);
            forwarded.error = Some(format!("{why}; answered by --mock when-app-down"));
        }
        self.rules
            .edit_response(target, &mut forwarded.response.headers);
    }

    /// Applies the response edits for `target` to an answer's headers.
    pub fn edit_response(&self, target: &str, headers: &mut Vec<Header>) {
        self.rules.edit_response(target, headers);
    }

    /// Applies the rules to a whole `request` and forwards it (through
    /// `default` when no route matches); the durable (ordered) path.
    pub async fn forward(&self, default: &Forwarder, request: &protocol::Request) -> Routed {
        let plan = self.plan(default, request);
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        let waited = u64::try_from(plan.delay.as_micros()).unwrap_or(u64::MAX);
        if let Some(own) = plan.own {
            return Routed {
                forwarded: Forwarded {
                    response: own.response,
                    error: own.error,
                    duration_us: waited,
                },
                dropped: own.dropped,
            };
        }
        let mut forwarded = plan
            .forwarder
            .forward(outgoing(request, plan.headers.as_deref()))
            .await;
        forwarded.duration_us = forwarded.duration_us.saturating_add(waited);
        self.after(&plan, &request.target, &mut forwarded);
        Routed {
            forwarded,
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
        truncated: None,
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
        truncated: None,
    }
}
