//! Redis side of the cluster benchmark: INFO, key kinds, MONITOR counts,
//! before/after deltas and the `redis-server` it starts.

use super::*;

/// One `INFO` reply over a fresh connection.
pub(crate) fn redis_info(port: u16, sections: &str) -> anyhow::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("INFO {sections}\r\n").as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("redis closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let len: usize = std::str::from_utf8(&buf[1..end])?.parse()?;
            if buf.len() >= end + 2 + len + 2 {
                return Ok(String::from_utf8_lossy(&buf[end + 2..end + 2 + len]).into_owned());
            }
        }
    }
}

/// Keys by kind (`ht:{name}:lease` → `ht:{·}:lease`), from `KEYS *`.
pub(crate) fn key_kinds(port: u16) -> anyhow::Result<BTreeMap<String, u64>> {
    use std::io::BufRead as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"KEYS *\r\n")?;
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let n: usize = line.trim().trim_start_matches('*').parse()?;
    let mut kinds = BTreeMap::new();
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line)?; // $len
        line.clear();
        r.read_line(&mut line)?;
        let key = line.trim_end();
        let kind = match (key.find('{'), key.find('}')) {
            (Some(a), Some(b)) if a < b => format!("{}{{·}}{}", &key[..a], &key[b + 1..]),
            _ => key.to_owned(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    Ok(kinds)
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) calls: BTreeMap<String, u64>,
    pub(crate) net_in: u64,
    pub(crate) net_out: u64,
    pub(crate) used_memory: u64,
    pub(crate) keys: u64,
    pub(crate) at: Option<Instant>,
}

pub(crate) fn snapshot(port: u16) -> Snapshot {
    let text = redis_info(port, "commandstats stats memory keyspace").expect("INFO answers");
    let mut s = Snapshot {
        at: Some(Instant::now()),
        ..Snapshot::default()
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_")
            && let Some((cmd, stats)) = rest.split_once(':')
            && let Some(calls) = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
        {
            s.calls.insert(cmd.to_owned(), calls);
        } else if let Some(v) = line.strip_prefix("total_net_input_bytes:") {
            s.net_in = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("total_net_output_bytes:") {
            s.net_out = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("used_memory:") {
            s.used_memory = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("db0:keys=") {
            s.keys = v
                .split(',')
                .next()
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
        }
    }
    s
}

/// `MONITOR` on its own connection, counting every command Redis runs by
/// origin: `lua:<cmd>` for those a script ran, `<cmd>` for those a client
/// sent (one round trip each), and the bytes the monitor itself received
/// (subtracted from Redis' output bytes).
pub(crate) struct Monitor {
    pub(crate) counts: Arc<std::sync::Mutex<(BTreeMap<String, u64>, u64)>>,
    pub(crate) stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Monitor {
    pub(crate) fn start(port: u16) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(b"MONITOR\r\n")?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        let counts = Arc::new(std::sync::Mutex::new((BTreeMap::new(), 0_u64)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, st) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::with_capacity(1 << 20, s);
            let mut line = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match r.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) if line.ends_with(b"\n") => {}
                    Ok(_) => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(_) => break,
                }
                let text = String::from_utf8_lossy(&line);
                // +1701.123 [0 127.0.0.1:5555] "evalsha" ...   or   [0 lua] "hget" ...
                let origin_lua = text.contains(" lua] \"");
                let cmd = text
                    .split_once("] \"")
                    .and_then(|(_, rest)| rest.split('"').next())
                    .map(str::to_ascii_lowercase);
                let mut g = c.lock().unwrap();
                g.1 += line.len() as u64;
                if let Some(cmd) = cmd
                    && cmd != "info"
                    && cmd != "monitor"
                {
                    let key = if origin_lua {
                        format!("lua:{cmd}")
                    } else {
                        cmd
                    };
                    *g.0.entry(key).or_default() += 1;
                }
                drop(g);
                line.clear();
            }
        });
        Ok(Self { counts, stop })
    }

    /// INFO (bytes) plus the monitor's counts (commands) so far.
    pub(crate) fn snapshot(&self, port: u16) -> Snapshot {
        // Let the monitor catch up with what Redis ran before the INFO.
        std::thread::sleep(Duration::from_millis(300));
        let mut s = snapshot(port);
        let g = self.counts.lock().unwrap();
        s.calls = g.0.clone();
        s.net_out = s.net_out.saturating_sub(g.1);
        s
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What Redis did between two snapshots: commands by name, bytes in and
/// out, and the seconds between them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Delta {
    pub(crate) calls: BTreeMap<String, f64>,
    pub(crate) net_in: f64,
    pub(crate) net_out: f64,
    pub(crate) secs: f64,
}

impl Delta {
    pub(crate) fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let mut calls = BTreeMap::new();
        for (cmd, n) in &b.calls {
            let d = n - a.calls.get(cmd).copied().unwrap_or(0);
            if d > 0 {
                calls.insert(cmd.clone(), d as f64);
            }
        }
        Self {
            calls,
            net_in: (b.net_in - a.net_in) as f64,
            net_out: (b.net_out - a.net_out) as f64,
            secs: (b.at.unwrap() - a.at.unwrap()).as_secs_f64(),
        }
    }

    pub(crate) fn total(&self) -> f64 {
        self.calls.values().sum()
    }

    /// Commands clients sent (round trips), not those scripts ran.
    pub(crate) fn sent(&self) -> f64 {
        self.calls
            .iter()
            .filter(|(c, _)| !c.starts_with("lua:"))
            .map(|(_, n)| n)
            .sum()
    }

    /// This minus `rate` (a background measured per second) over our time.
    pub(crate) fn minus_background(&self, rate: &Delta) -> Self {
        let k = self.secs / rate.secs;
        let mut calls = self.calls.clone();
        for (cmd, n) in &rate.calls {
            *calls.entry(cmd.clone()).or_default() -= n * k;
        }
        Self {
            calls,
            net_in: self.net_in - rate.net_in * k,
            net_out: self.net_out - rate.net_out * k,
            secs: self.secs,
        }
    }

    pub(crate) fn per(&self, n: f64) -> Self {
        Self {
            calls: self.calls.iter().map(|(c, v)| (c.clone(), v / n)).collect(),
            net_in: self.net_in / n,
            net_out: self.net_out / n,
            secs: self.secs,
        }
    }

    pub(crate) fn plus(&self, other: &Delta) -> Self {
        let mut calls = self.calls.clone();
        for (cmd, n) in &other.calls {
            *calls.entry(cmd.clone()).or_default() += n;
        }
        Self {
            calls,
            net_in: self.net_in + other.net_in,
            net_out: self.net_out + other.net_out,
            secs: self.secs + other.secs,
        }
    }

    /// `evalsha 2.00, xadd 1.00` (commands above 0.05).
    pub(crate) fn breakdown(&self) -> String {
        let mut v: Vec<(&String, &f64)> = self.calls.iter().filter(|(_, n)| **n >= 0.05).collect();
        v.sort_by(|a, b| b.1.total_cmp(a.1));
        v.iter()
            .map(|(c, n)| format!("{c} {n:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(crate) fn start_redis(dir: &Path, port: u16) -> anyhow::Result<Child> {
    spawn(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--save", "", "--protected-mode", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}
