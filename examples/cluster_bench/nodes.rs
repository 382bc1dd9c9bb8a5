//! The relay nodes, agents and request loops of the cluster benchmark.

use super::*;

pub(crate) struct Node {
    pub(crate) id: &'static str,
    pub(crate) port: u16,
    pub(crate) internal: u16,
    pub(crate) child: Option<Child>,
}

impl Node {
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn start(&mut self, bin: &Path, redis: u16, ttl: u64) -> anyhow::Result<()> {
        let child = spawn(
            Command::new(bin.join("hooktunnel-relay"))
                .args(["--listen", &format!("127.0.0.1:{}", self.port)])
                .args(["--internal-listen", &format!("127.0.0.1:{}", self.internal)])
                .args(["--cluster", &format!("redis://127.0.0.1:{redis}/0")])
                .args(["--node-id", self.id, "--lease-ttl", &ttl.to_string()])
                .args(relay_flags())
                .env("HOOKTUNNEL_RELAY_CLUSTER_SECRET", SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        self.child = Some(child);
        wait_port(self.port).await
    }

    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

pub(crate) fn relay_flags() -> [&'static str; 8] {
    [
        "--rate-per-ip",
        "off",
        "--rate-per-tunnel",
        "off",
        "--max-conns-per-ip",
        "1000000",
        "--max-body",
        "67108864",
    ]
}

/// `hooktunnel listen` for `app` on `relays`, its public URL once it printed it.
pub(crate) async fn start_agent(
    bin: &Path,
    home: &Path,
    app: u16,
    relays: &str,
    name: &str,
) -> anyhow::Result<(Child, String)> {
    let mut agent = spawn(
        Command::new(bin.join("hooktunnel"))
            .env("HOOKTUNNEL_HOME", home)
            .args(["listen", &format!("127.0.0.1:{app}"), "--relay", relays])
            .args(["--name", name, "--json", "--no-tui", "--web-addr", "off"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let mut lines = BufReader::new(agent.stdout.take().context("agent stdout")?).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("the agent said nothing for 20 s")??
        .context("the agent printed nothing")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready: serde_json::Value = serde_json::from_str(&ready)?;
    let public = ready["public_url"]
        .as_str()
        .with_context(|| format!("no public_url in {ready}"))?
        .to_owned();
    Ok((agent, public))
}

pub(crate) fn tunnel_path(url: &str) -> String {
    url[url.find("/t/").expect("a path URL")..].to_owned()
}

pub(crate) type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

pub(crate) async fn post(client: &Client, url: &str, body: Bytes) -> anyhow::Result<u16> {
    let request = http::Request::post(url).body(Body::from(body))?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .context("no answer in 30 s")??;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Tunnels this node says it holds (`/_hooktunnel/health`).
pub(crate) async fn tunnels_on(client: &Client, node: &Node) -> Option<u64> {
    let request = http::Request::get(format!("{}/_hooktunnel/health", node.url()))
        .body(Body::empty())
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(2), client.request(request))
        .await
        .ok()?
        .ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).ok()?["tunnels"].as_u64()
}

/// CPU ticks (user + system) of `pids` so far.
pub(crate) fn ticks(pids: &[Option<u32>]) -> u64 {
    pids.iter()
        .flatten()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Waits (≤ 10 s) until `pids` use under ~5 % of a core over half a second.
pub(crate) async fn quiet(pids: &[Option<u32>]) {
    for _ in 0..20 {
        let before = ticks(pids);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if ticks(pids) - before <= 2 {
            return;
        }
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// Milliseconds of `n` sequential POSTs of `body` to `url`.
pub(crate) async fn latencies(
    client: &Client,
    url: &str,
    body: &Bytes,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let status = post(client, url, body.clone()).await?;
        if status != 200 {
            bail!("{url}: {status}");
        }
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Requests per second of `conns` loops of POSTs for `secs`; non-200s count as errors.
pub(crate) async fn throughput(
    client: &Client,
    url: &str,
    body: &Bytes,
    conns: usize,
    secs: f64,
) -> (f64, u64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad) = (0_u64, 0_u64);
            while Instant::now() < deadline {
                match post(&client, &url, body.clone()).await {
                    Ok(200) => ok += 1,
                    _ => bad += 1,
                }
            }
            (ok, bad)
        }));
    }
    let (mut ok, mut bad) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.unwrap_or((0, 1));
        ok += o;
        bad += b;
    }
    (ok as f64 / started.elapsed().as_secs_f64(), bad)
}

#[derive(Default)]
pub(crate) struct Cell {
    pub(crate) lat: Vec<f64>,
    pub(crate) rate: Vec<f64>,
    pub(crate) errors: u64,
}
