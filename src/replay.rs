//! Re-sending a stored request through the same forwarder as the live path.

use std::time::Duration;

use bytes::Bytes;

use crate::clock::now_ms;
use crate::exchange::{Exchange, Header};
use crate::forward::{Forwarder, Outgoing, Target};
use crate::verify::{self, SecretSpec};

/// How to replay.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Send here instead of the target the request was captured for.
    pub to: Option<Target>,
    /// Local app timeout (default: the forwarder's default).
    pub timeout: Option<Duration>,
    /// Accept any certificate from an `https://` local app.
    pub insecure_local: bool,
}

/// What to send: the original request, possibly edited or re-signed.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Body bytes.
    pub body: Bytes,
}

impl ReplayRequest {
    /// The request exactly as it was captured.
    pub fn original(e: &Exchange) -> Self {
        Self {
            method: e.method.clone(),
            path: e.path.clone(),
            headers: e.request_headers.clone(),
            body: e.request_body.clone(),
        }
    }
}

/// Re-signs `request` for the provider its headers name, when `secrets`
/// (each with where it came from) holds one for that provider, so the local
/// app's own check passes on a replay. `None`: nothing to re-sign with (the
/// request goes as captured); `Some(Err)`: re-signing failed.
pub fn resign_if_configured(
    secrets: &[(SecretSpec, String)],
    original: &Exchange,
    request: &mut ReplayRequest,
    now: u64,
) -> Option<Result<String, String>> {
    let provider = verify::detect(&request.headers)?;
    let (spec, source) = secrets.iter().find(|(s, _)| s.provider == provider)?;
    Some(
        verify::resign(
            provider,
            &spec.secret,
            &request.headers,
            &request.body,
            now,
            false,
            original.public_url.as_deref(),
        )
        .map(|headers| {
            request.headers = headers;
            format!("re-signed for {provider} with the secret from {source}")
        })
        .map_err(|e| format!("could not re-sign for {provider}: {e}")),
    )
}

/// Where a replay of `original` goes.
pub fn destination(original: &Exchange, opts: &ReplayOptions) -> anyhow::Result<Target> {
    match &opts.to {
        Some(t) => Ok(t.clone()),
        None => Target::parse(&original.target).map_err(|e| {
            anyhow::anyhow!(
                "the stored target '{}' is unusable ({e}); pass --to URL",
                original.target
            )
        }),
    }
}

/// Sends `request` and returns the new exchange (not yet stored), linked to `original`.
///
/// Refuses an original whose request body the history holds only in part
/// ([`Exchange::replay_refusal`]): sending the head would not be a replay.
pub async fn send(
    original: &Exchange,
    request: ReplayRequest,
    opts: &ReplayOptions,
) -> anyhow::Result<Exchange> {
    if let Some(why) = original.replay_refusal() {
        anyhow::bail!(why);
    }
    let target = destination(original, opts)?;
    let forwarder = Forwarder::with_options(
        target.clone(),
        opts.timeout.unwrap_or(crate::forward::DEFAULT_TIMEOUT),
        &crate::forward::ForwardOptions {
            insecure_local: opts.insecure_local,
            host_header: None,
        },
    );
    let received_at_ms = now_ms();
    let forwarded = forwarder
        .forward(Outgoing {
            method: &request.method,
            path: &request.path,
            headers: &request.headers,
            body: request.body.clone(),
        })
        .await;
    Ok(Exchange {
        attempts: 1,
        id: hooktunnel_protocol::next_id(),
        tunnel: original.tunnel.clone(),
        received_at_ms,
        method: request.method,
        path: request.path,
        target: target.base_url(),
        request_headers: request.headers,
        request_body: request.body,
        request_truncated: None,
        capture_degraded: false,
        response: Some(forwarded.response),
        duration_us: forwarded.duration_us,
        error: forwarded.error,
        replay_of: Some(original.id),
        queued: false,
        peer: None,
        public_url: original.public_url.clone(),
        signature: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::Provider;

    const SECRET: &str = "whsec_test_secret";

    /// A captured Stripe event, signed at `signed_at`.
    fn stripe_exchange(signed_at: u64) -> Exchange {
        let mut e = crate::export::fixtures::text_exchange();
        e.request_body = Bytes::from_static(br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#);
        e.request_headers = vec![Header::new("content-type", "application/json")];
        e.request_headers.extend(
            verify::sign(
                Provider::Stripe,
                SECRET,
                &e.request_body,
                signed_at,
                None,
                None,
            )
            .unwrap(),
        );
        e
    }

    #[test]
    fn a_configured_secret_re_signs_an_old_event_so_it_verifies_now() {
        let original = stripe_exchange(1_000);
        let now = 1_000_000;
        let mut request = ReplayRequest::original(&original);
        let stale = verify::verify(
            Provider::Stripe,
            SECRET,
            &request.headers,
            &request.body,
            None,
            now,
        );
        assert!(stale.is_err(), "the captured signature is too old by now");
        let secrets = vec![(
            SecretSpec::new(Provider::Stripe, SECRET),
            "--verify".to_owned(),
        )];
        let note = resign_if_configured(&secrets, &original, &mut request, now);
        assert_eq!(
            note,
            Some(Ok(
                "re-signed for stripe with the secret from --verify".into()
            ))
        );
        verify::verify(
            Provider::Stripe,
            SECRET,
            &request.headers,
            &request.body,
            None,
            now,
        )
        .unwrap();
        assert_eq!(
            request.headers[0], original.request_headers[0],
            "other headers kept"
        );
    }

    #[test]
    fn without_a_secret_for_the_provider_the_request_goes_as_captured() {
        let original = stripe_exchange(1_000);
        let mut request = ReplayRequest::original(&original);
        let github = vec![(
            SecretSpec::new(Provider::GitHub, "s"),
            "--verify".to_owned(),
        )];
        assert_eq!(
            resign_if_configured(&github, &original, &mut request, 2_000),
            None
        );
        assert_eq!(request.headers, original.request_headers);
    }
}
