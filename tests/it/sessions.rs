//! One agent per tunnel: a second run of the same tunnel is refused with who
//! holds it, `--takeover` replaces the live one (which stops for good), and a
//! relay shutdown says why. Real relay, real agents, real local app.

use std::time::Duration;

use crate::support::*;
use hooktunnel::commands::listen;
use hooktunnel::event::{AgentEvent, ConnectionState};
use hooktunnel_relay::RelayConfig;

/// The next connection event of `agent`.
async fn next_connection(agent: &mut Agent) -> ConnectionState {
    loop {
        match bounded("a connection event", agent.running.events.recv()).await {
            Some(AgentEvent::Connection(state)) => return state,
            Some(_) => continue,
            None => panic!("agent events ended"),
        }
    }
}

fn named(relay: &Relay, app: &LocalApp, home: &std::path::Path) -> listen::ListenSettings {
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home);
    s.name = Some("my-app".into());
    s
}

#[tokio::test]
async fn a_second_run_of_a_live_tunnel_is_refused_with_who_holds_it() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let first = Agent::start(named(&relay, &app, home.path())).await;

    let cancel = tokio_util::sync::CancellationToken::new();
    let second = bounded(
        "the second run",
        listen::start(named(&relay, &app, home.path()), cancel),
    )
    .await;
    let err = format!("{:#}", second.err().expect("a second run must be refused"));
    let host = hooktunnel::agent::host_name().unwrap_or_default();
    assert!(
        err.contains(&format!("my-app is already online from host {host} since")),
        "{err}"
    );
    assert!(err.contains("--takeover"), "{err}");

    let answer = send(
        &client(),
        "GET",
        &format!("{}/x", first.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "the first run keeps the tunnel");
    first.stop().await;
}

#[tokio::test]
async fn takeover_replaces_the_live_run_which_stops_for_good() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut first = Agent::start(named(&relay, &app, home.path())).await;

    let mut s = named(&relay, &app, home.path());
    s.takeover = true;
    let second = Agent::start(s).await;
    assert_eq!(second.public_url, first.public_url);

    let state = next_connection(&mut first).await;
    let ConnectionState::Offline(why) = state else {
        panic!("the replaced run must stop, not {state:?}");
    };
    assert!(
        why.contains("taken over by another hooktunnel listen from host"),
        "{why}"
    );
    let ended = bounded("the replaced run to end", &mut first.running.task)
        .await
        .unwrap();
    assert!(ended.is_err(), "a replaced run ends with an error");

    let answer = send(
        &client(),
        "GET",
        &format!("{}/y", second.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "the new run serves the tunnel");
    // The replaced run does not come back and take the tunnel in turn.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = send(
        &client(),
        "GET",
        &format!("{}/z", second.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(again.status, 200);
    second.stop().await;
}

#[tokio::test]
async fn a_stopped_run_can_be_restarted_at_once() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let agent = Agent::start(named(&relay, &app, home.path())).await;
        agent.stop().await;
    }
}

#[tokio::test]
async fn relay_shutdown_tells_agents_why() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (_app, mut agent, _home) = agent_on(&relay).await;
    relay.shutdown().await;
    let state = next_connection(&mut agent).await;
    let ConnectionState::Reconnecting { reason, .. } = state else {
        panic!("the agent reconnects after a relay restart, not {state:?}");
    };
    assert!(reason.contains("relay restarting"), "{reason}");
    agent.stop().await;
}

#[tokio::test]
async fn names_are_capped_per_key_and_release_frees_one_with_its_queue() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(RelayConfig {
        data_dir: Some(data.path().to_path_buf()),
        max_names_per_key: 2,
        ..RelayConfig::default()
    })
    .await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let with_name = |name: &str| {
        let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
        s.name = Some(name.into());
        s
    };
    let first = Agent::start(with_name("first")).await;
    let first_url = first.public_url.clone();
    first.stop().await;
    Agent::start(with_name("second")).await.stop().await;

    let refused = bounded(
        "a third name",
        listen::start(
            with_name("third"),
            tokio_util::sync::CancellationToken::new(),
        ),
    )
    .await;
    let err = format!("{:#}", refused.err().expect("past the cap"));
    assert!(err.contains("already holds 2 tunnel names"), "{err}");
    assert!(err.contains("hooktunnel release NAME"), "{err}");

    for i in 0..2 {
        let queued = send(&client(), "POST", &first_url, &[], format!("q{i}")).await;
        assert_eq!(queued.status, 202);
    }
    let unconfirmed =
        hooktunnel_run(home.path(), &["release", "first", "--relay", &relay.url]).await;
    assert!(!unconfirmed.ok, "{unconfirmed:?}");
    assert!(
        unconfirmed
            .stderr
            .contains("its 2 queued requests would be deleted")
            && unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );

    let released = hooktunnel_run(
        home.path(),
        &["release", "first", "--relay", &relay.url, "--yes"],
    )
    .await;
    assert!(released.ok, "{released:?}");
    assert!(
        released.stdout.contains("Released 'first'")
            && released.stdout.contains("deleted 2 queued requests"),
        "{}",
        released.stdout
    );
    let gone = send(&client(), "POST", &first_url, &[], "after").await;
    assert_eq!(gone.status, 404, "a released name queues nothing");

    // The freed slot takes a new name; a live name cannot be released.
    let third = Agent::start(with_name("third")).await;
    release_refused(home.path(), "third", &relay, "stop that listen first").await;
    third.stop().await;

    let stranger = tempfile::tempdir().unwrap();
    std::fs::write(
        stranger.path().join("config.toml"),
        "agent_key = \"someone-else\"\n",
    )
    .unwrap();
    release_refused(
        stranger.path(),
        "second",
        &relay,
        "belongs to another agent key",
    )
    .await;
}

/// `hooktunnel release NAME` from `home` fails, saying `why`.
async fn release_refused(home: &std::path::Path, name: &str, relay: &Relay, why: &str) {
    let run = hooktunnel_run(home, &["release", name, "--relay", &relay.url, "--yes"]).await;
    assert!(!run.ok, "{run:?}");
    assert!(run.stderr.contains(why), "{}", run.stderr);
}

#[tokio::test]
async fn requests_the_relay_refused_are_noted_to_the_agent() {
    let relay = Relay::start(RelayConfig {
        max_body_bytes: 16,
        ..RelayConfig::default()
    })
    .await;
    let (app, mut agent, _home) = agent_on(&relay).await;
    for _ in 0..3 {
        let answer = send(
            &client(),
            "POST",
            &format!("{}/hooks/big", agent.public_url),
            &[],
            "x".repeat(100),
        )
        .await;
        assert_eq!(answer.status, 413);
    }
    let mut noted = 0;
    let mut lines = Vec::new();
    while noted < 3 {
        match bounded("a refusal note", agent.running.events.recv()).await {
            Some(AgentEvent::Notice(line)) => {
                let count: u64 = line
                    .strip_prefix("relay refused ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("not a refusal note: {line}"));
                assert!(line.contains("(413 body too large)"), "{line}");
                assert!(line.contains("POST /hooks/big"), "{line}");
                noted += count;
                lines.push(line);
            }
            Some(_) => continue,
            None => panic!("agent stopped"),
        }
    }
    assert_eq!(noted, 3, "{lines:?}");
    assert!(
        app.seen().is_empty(),
        "refused requests never reach the app"
    );
    agent.stop().await;
}
