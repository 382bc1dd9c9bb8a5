//! The web inspector in a real browser: headless Chromium driven over
//! WebDriver (chromedriver + fantoccini) against a real relay, agent and
//! local app. A missing chromium/chromedriver fails the test unless
//! `HOOKTUNNEL_SKIP_BROWSER` is set; `.ci/run` installs both.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::{bounded, client, send};

/// A chromedriver of our own on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver, or `None` when the browser is not installed.
async fn driver() -> Option<Driver> {
    let installed = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("chromium")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("HOOKTUNNEL_SKIP_BROWSER").is_some(),
            "chromium and chromedriver are not installed: apt-get install chromium chromium-driver, or set HOOKTUNNEL_SKIP_BROWSER=1 to skip this test"
        );
        eprintln!("NOTICE: HOOKTUNNEL_SKIP_BROWSER is set and chromium is missing; skipping");
        return None;
    }
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = client();
    bounded("chromedriver to start", async {
        loop {
            let status = http::Request::get(format!("{}/status", driver.url))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            if let Ok(r) = http.request(status).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    Some(driver)
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    bounded(
        "a browser session",
        // chromedriver is on loopback: plain HTTP, so no TLS stack is pulled
        // into the test build (a second rustls provider would break others).
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .expect("chromedriver opens a session")
}

/// Polls `check` (bounded) until it returns `Some`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    bounded(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

async fn script(c: &Client, js: &str) -> Value {
    bounded("a script", c.execute(js, Vec::new()))
        .await
        .unwrap()
}

async fn row_count(c: &Client) -> usize {
    script(c, "return document.querySelectorAll('#rows tr.row').length")
        .await
        .as_u64()
        .unwrap_or(0) as usize
}

/// What a hostile sender might put in a webhook.
const HOSTILE: &str = r#"{"a":"</script><script>window.__pwned=1</script>","b":"<img src=x onerror=window.__pwned=2>","c":"javascript:window.__pwned=3"}"#;

#[tokio::test]
async fn the_page_shows_rows_live_opens_replays_filters_and_stays_inert() {
    let Some(driver) = driver().await else {
        return;
    };
    let app = crate::support::LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let settings = crate::support::settings(None, &app.port().to_string(), home.path());
    let mut agent = crate::support::Agent::start(settings).await;
    let (web, cancel) = crate::support::web_inspector(&mut agent, home.path()).await;
    // Drain the agent's events as the TUI or printer would.
    let mut events = std::mem::replace(&mut agent.running.events, tokio::sync::mpsc::channel(1).1);
    tokio::spawn(async move { while events.recv().await.is_some() {} });

    let c = browser(&driver, profile.path()).await;
    bounded("the page", c.goto(&web.url())).await.unwrap();
    until("the live stream to say online", || async {
        let t = script(&c, "return document.getElementById('conn').textContent").await;
        (t.as_str() == Some("online")).then_some(())
    })
    .await;
    let shown_url = script(
        &c,
        "return document.getElementById('public-url').textContent",
    )
    .await;
    assert!(
        shown_url.as_str().unwrap().contains(&agent.public_url),
        "{shown_url}"
    );
    assert_eq!(row_count(&c).await, 0);

    // A hostile webhook arrives while the page is open: the row appears live.
    let http = client();
    let hook = format!("{}/hooks/github", agent.public_url);
    let answer = send(
        &http,
        "POST",
        &hook,
        &[
            ("content-type", b"application/json"),
            ("x-evil", b"<script>window.__pwned=4</script>"),
        ],
        HOSTILE,
    )
    .await;
    assert_eq!(answer.status, 200);
    until("the row to appear without reload", || async {
        (row_count(&c).await == 1).then_some(())
    })
    .await;
    // One tunnel: no tunnel column.
    let column = script(
        &c,
        "return [document.getElementById('th-tunnel').hidden, \
                 document.querySelectorAll('#rows td.tunnel').length]",
    )
    .await;
    assert_eq!(column, json!([true, 0]));

    // Open it: the body shows, as text.
    bounded("click", async {
        c.find(Locator::Css("#rows tr.row"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap()
    })
    .await;
    let body = until("the body to show", || async {
        let t = script(
            &c,
            "return document.getElementById('body-view').textContent",
        )
        .await;
        t.as_str()
            .filter(|s| s.contains("__pwned"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        body.contains("<img src=x onerror=window.__pwned=2>"),
        "{body}"
    );
    let inert = script(
        &c,
        "return [window.__pwned === undefined, \
                 document.querySelectorAll('#detail img, #detail script, #rows img, #rows script').length]",
    )
    .await;
    assert_eq!(inert, json!([true, 0]), "hostile text stayed text");

    // Replay: a ↻ row is added live.
    bounded("click replay", async {
        c.find(Locator::Id("replay"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap()
    })
    .await;
    until("the replay row", || async {
        let n = script(
            &c,
            "return document.querySelectorAll('#rows tr.row[data-replay-of]').length",
        )
        .await;
        (n == json!(1)).then_some(())
    })
    .await;
    assert_eq!(row_count(&c).await, 2);
    let mark = script(
        &c,
        "return document.querySelector('#rows tr[data-replay-of] .replay-mark').textContent",
    )
    .await;
    assert_eq!(mark, "↻");
    assert_eq!(app.seen().len(), 2, "the app got the replay");

    // Keyboard, as in the TUI: k moves up to the replay, Enter opens it, / focuses the filter.
    let pane = bounded("list pane", c.find(Locator::Id("list-pane")))
        .await
        .unwrap();
    bounded("k", pane.send_keys("k")).await.unwrap();
    until("k to select the replay row", || async {
        let n = script(
            &c,
            "return document.querySelectorAll('#rows tr.selected[data-replay-of]').length",
        )
        .await;
        (n == json!(1)).then_some(())
    })
    .await;
    bounded("Enter", pane.send_keys("\u{E007}")).await.unwrap();
    until("Enter to open the replay", || async {
        let t = script(&c, "return document.getElementById('d-meta').textContent").await;
        t.as_str().filter(|s| s.contains("replay of")).map(|_| ())
    })
    .await;
    bounded("/", pane.send_keys("/")).await.unwrap();
    until("/ to focus the filter", || async {
        let id = script(&c, "return document.activeElement.id").await;
        (id == json!("filter")).then_some(())
    })
    .await;

    // Another webhook, then the filter narrows the list to it.
    send(
        &http,
        "POST",
        &format!("{}/other/path", agent.public_url),
        &[],
        "plain",
    )
    .await;
    until("the third row", || async {
        (row_count(&c).await == 3).then_some(())
    })
    .await;
    let filter = bounded("filter box", c.find(Locator::Id("filter")))
        .await
        .unwrap();
    bounded("typing", filter.send_keys("path:/other/**\n"))
        .await
        .unwrap();
    until("the filter to narrow the list", || async {
        let paths = script(&c, "return Array.from(document.querySelectorAll('#rows tr.row td.path')).map(td => td.textContent)").await;
        (paths == json!(["/other/path"])).then_some(())
    })
    .await;

    // Keyboard: / focuses the filter; Escape leaves it; j/k move.
    let errors = script(&c, "return window.__pwned === undefined").await;
    assert_eq!(errors, json!(true));
    let _ = bounded("close", c.close()).await;
    cancel.cancel();
    agent.stop().await;
}

/// A history of two tunnels (one agent serving both): the header lists both,
/// rows get a tunnel column, the detail names the tunnel, and `tunnel:`
/// filters.
#[tokio::test]
async fn the_page_shows_which_tunnel_when_there_are_several() {
    let Some(driver) = driver().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (web, _) = crate::web::inspector_over(
        home.path(),
        &[(1, "shop"), (2, "billing"), (3, "shop")],
        &cancel,
    )
    .await;
    let info = |name: &str| hooktunnel::web::TunnelInfo {
        name: name.into(),
        public_url: format!("http://127.0.0.1:7070/t/{name}"),
        target: "http://127.0.0.1:3000".into(),
    };
    web.state.set_tunnels(vec![info("shop"), info("billing")]);

    let c = browser(&driver, profile.path()).await;
    bounded("the page", c.goto(&web.url())).await.unwrap();
    let cells = until("rows with their tunnels", || async {
        let v = script(
            &c,
            "return Array.from(document.querySelectorAll('#rows tr.row td.tunnel')).map(td => td.textContent)",
        )
        .await;
        (v.as_array().is_some_and(|a| a.len() == 3)).then_some(v)
    })
    .await;
    assert_eq!(cells, json!(["shop", "billing", "shop"]));
    let head = script(
        &c,
        "return [document.getElementById('th-tunnel').hidden, \
                 document.getElementById('public-url').textContent]",
    )
    .await;
    assert_eq!(head[0], json!(false));
    let header = head[1].as_str().unwrap();
    assert!(
        header.contains("shop: http://127.0.0.1:7070/t/shop")
            && header.contains("billing: http://127.0.0.1:7070/t/billing"),
        "{header}"
    );

    let filter = bounded("filter box", c.find(Locator::Id("filter")))
        .await
        .unwrap();
    bounded("typing", filter.send_keys("tunnel:billing\n"))
        .await
        .unwrap();
    until("the filter to keep billing's row", || async {
        let paths = script(
            &c,
            "return Array.from(document.querySelectorAll('#rows tr.row td.path')).map(td => td.textContent)",
        )
        .await;
        (paths == json!(["/hooks/2"])).then_some(())
    })
    .await;
    bounded("click", async {
        c.find(Locator::Css("#rows tr.row"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap()
    })
    .await;
    until("the detail to name the tunnel", || async {
        let t = script(&c, "return document.getElementById('d-meta').textContent").await;
        t.as_str()
            .filter(|s| s.contains("tunnel billing"))
            .map(|_| ())
    })
    .await;
    let _ = bounded("close", c.close()).await;
    cancel.cancel();
}
