//! Several tunnels in one agent (issue 17): `[[tunnel]]` tables served over
//! one WebSocket, each with its own name, rules, local app, queue and acks.

use hooktunnel::agent::tunnel::{AlsoTunnel, ListenSettings};
use hooktunnel::forward::Target;
use hooktunnel_relay::RelayConfig;

use crate::support::*;

const CONFIG: &str = r#"
[[tunnel]]
name = "shop"
basic_auth = ["ci:pw"]

[[tunnel]]
name = "hooks"
add_header = ["X-Via: hooks"]
"#;

/// `shop` forwards to `shop_app`, `hooks` to `hooks_app`, over one socket.
fn two_tunnels(
    relay: &Relay,
    shop_app: &LocalApp,
    hooks_app: &LocalApp,
    home: &std::path::Path,
) -> ListenSettings {
    // Written once: the agent adds its key to this file on first start.
    let config = home.join("config.toml");
    if !config.exists() {
        std::fs::write(config, CONFIG).unwrap();
    }
    let mut s = settings(Some(&relay.url), &shop_app.port().to_string(), home);
    s.name = Some("shop".into());
    s.also = vec![AlsoTunnel {
        name: "hooks".into(),
        target: Target::parse(&hooks_app.port().to_string()).unwrap(),
    }];
    s
}

async fn post(url: &str, headers: &[(&str, &[u8])], body: &'static str) -> Answer {
    send(&client(), "POST", url, headers, body).await
}

fn basic() -> Vec<u8> {
    use base64::Engine as _;
    format!("Basic {}", base64::prelude::BASE64_STANDARD.encode("ci:pw")).into_bytes()
}

/// (tunnel, path) of stored exchanges, sorted.
async fn tunnels_of(
    home: &std::path::Path,
    summaries: &[hooktunnel::exchange::ExchangeSummary],
) -> Vec<String> {
    let mut out = Vec::new();
    for s in summaries {
        let stored = wait_stored(home, &s.id).await;
        out.push(format!("{} {}", stored.tunnel, stored.path));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tunnels_share_one_socket_with_their_own_rules_apps_and_history() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (shop_app, hooks_app) = (LocalApp::start().await, LocalApp::start().await);
    let home = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(two_tunnels(&relay, &shop_app, &hooks_app, home.path())).await;
    let urls: Vec<(&str, &str)> = agent
        .running
        .tunnels
        .iter()
        .map(|t| (t.name.as_str(), t.public_url.as_str()))
        .collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert_eq!(urls[0].0, "shop");
    assert_eq!(urls[1].0, "hooks");
    let (shop, hooks) = (urls[0].1.to_owned(), urls[1].1.to_owned());

    let status = hooktunnel_run(home.path(), &["status", "--json"]).await;
    assert!(status.ok, "{}", status.stderr);
    for t in ["shop", "hooks"] {
        assert!(
            status.stdout.contains(&format!("\"name\":\"{t}\"")),
            "{}",
            status.stdout
        );
    }
    let health: serde_json::Value = serde_json::from_slice(&relay.health().await.body).unwrap();
    assert_eq!(health["tunnels"], 2, "{health}");
    assert_eq!(
        health["agent_connections"], 1,
        "two tunnels, one socket: {health}"
    );

    // Each tunnel keeps its own rules: basic auth guards `shop` only.
    assert_eq!(post(&format!("{shop}/order"), &[], "no").await.status, 401);
    let auth = basic();
    let ok = post(
        &format!("{shop}/order"),
        &[("authorization", &auth)],
        "paid",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, "paid");
    let hooked = post(&format!("{hooks}/event"), &[], "ping").await;
    assert_eq!(hooked.status, 200);
    assert_eq!(hooked.body, "ping");

    // Each reaches its own app, with its own header edits.
    let (at_shop, at_hooks) = (shop_app.seen(), hooks_app.seen());
    assert_eq!(at_shop.len(), 1);
    assert_eq!(at_shop[0].path_and_query, "/order");
    assert!(at_shop[0].header("x-via").is_empty());
    assert_eq!(at_hooks.len(), 1);
    assert_eq!(at_hooks[0].path_and_query, "/event");
    assert_eq!(at_hooks[0].header("x-via"), [b"hooks".to_vec()]);

    // One history, each exchange under its tunnel.
    let recorded = [agent.next_exchange().await, agent.next_exchange().await];
    assert_eq!(
        tunnels_of(home.path(), &recorded).await,
        ["hooks /event", "shop /order"]
    );
    agent.stop().await;

    // Away: each tunnel queues on its own; back, each queue is delivered to
    // its app and acked into its own queue (the relay's queue empties).
    assert_eq!(post(&format!("{hooks}/late"), &[], "q1").await.status, 202);
    assert_eq!(
        post(&format!("{shop}/late"), &[("authorization", &auth)], "q2")
            .await
            .status,
        202
    );
    assert_eq!(relay.metric("hooktunnel_queued_total").await, 2);
    assert_eq!(relay.metric("hooktunnel_acked_total").await, 0);
    let mut agent = Agent::start(two_tunnels(&relay, &shop_app, &hooks_app, home.path())).await;
    let delivered = [agent.next_exchange().await, agent.next_exchange().await];
    assert_eq!(
        tunnels_of(home.path(), &delivered).await,
        ["hooks /late", "shop /late"]
    );
    assert_eq!(
        hooks_app.seen().last().map(|s| s.body.clone()),
        Some(b"q1".to_vec())
    );
    assert_eq!(
        shop_app.seen().last().map(|s| s.body.clone()),
        Some(b"q2".to_vec())
    );
    // An ack into the wrong queue deletes nothing and is not counted.
    let emptied = async {
        while relay.metric("hooktunnel_acked_total").await != 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    bounded("both queues acked", emptied).await;
    agent.stop().await;
}

/// All or none: when one name of the set is held by another agent, the
/// whole hello is refused, naming that tunnel, and nothing stays online.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_with_one_taken_name_is_refused_whole() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (shop_app, hooks_app) = (LocalApp::start().await, LocalApp::start().await);
    let other = tempfile::tempdir().unwrap();
    let mut holder = settings(
        Some(&relay.url),
        &hooks_app.port().to_string(),
        other.path(),
    );
    holder.name = Some("hooks".into());
    let holder = Agent::start(holder).await;

    let home = tempfile::tempdir().unwrap();
    let s = two_tunnels(&relay, &shop_app, &hooks_app, home.path());
    let err = match bounded(
        "a refused start",
        hooktunnel::commands::listen::start(s, Default::default()),
    )
    .await
    {
        Ok(_) => panic!("a set with a taken name started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("tunnel 'hooks'") && err.contains("another agent key"),
        "{err}"
    );
    let health: serde_json::Value = serde_json::from_slice(&relay.health().await.body).unwrap();
    assert_eq!(
        health["tunnels"], 1,
        "only the holder's tunnel is live: {health}"
    );
    holder.stop().await;
}

/// A relay from before several tunnels per connection grants only the
/// first: the agent stops and says so rather than serve half the set.
#[tokio::test]
async fn an_old_relay_that_grants_one_tunnel_of_a_set_is_named() {
    let e = start_against_an_old_relay(|s| {
        s.also = vec![AlsoTunnel {
            name: "hooks".into(),
            target: Target::parse("4000").unwrap(),
        }];
    })
    .await;
    assert!(e.contains("serves one tunnel per connection"), "{e}");
}

/// `listen --all` / `--tunnel` read the tables; mistakes are named before
/// anything connects.
#[tokio::test(flavor = "multi_thread")]
async fn listen_all_names_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), CONFIG).unwrap();
    let run = hooktunnel_run(home.path(), &["listen", "--all", "--no-tui"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("[[tunnel]] 'shop' has no `target`"),
        "{}",
        run.stderr
    );
    let run = hooktunnel_run(
        home.path(),
        &["listen", "3000", "--tunnel", "nope", "--no-tui"],
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("no [[tunnel]] table is named 'nope' (the config has: shop, hooks)"),
        "{}",
        run.stderr
    );
    let run = hooktunnel_run(home.path(), &["listen", "--no-tui"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("PORT|URL"), "{}", run.stderr);
}
