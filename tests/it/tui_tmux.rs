//! Drives the real `hooktunnel listen` inspector inside tmux: the URL shows,
//! a request appears as a row, Enter opens it, r replays it, q quits back to
//! the shell. A missing tmux fails the test unless `HOOKTUNNEL_SKIP_TMUX` is
//! set; `.ci/run` installs tmux.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

const PROMPT: &str = "tuitest$";

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-u", "-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn capture(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", "t"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(
            out.status.success(),
            "send-keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A tmux format (`#{alternate_on}`…) for the pane.
    fn display(&self, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "t", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls the pane until `ok` holds (at most 30 s), returning the screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// A `sh` in a 120×30 tmux pane of its own with a scrubbed environment,
/// at its prompt; `None` when tmux is missing and `HOOKTUNNEL_SKIP_TMUX` is set.
fn shell_in_tmux(home: &std::path::Path, name: &str) -> Option<Tmux> {
    if Command::new("tmux").arg("-V").output().is_err() {
        // A missing tmux fails (CI installs it); skipping takes an explicit
        // opt-out, so the inspector's terminal test never passes by accident.
        assert!(
            std::env::var_os("HOOKTUNNEL_SKIP_TMUX").is_some(),
            "tmux is not installed: install it (apt-get install tmux) or set HOOKTUNNEL_SKIP_TMUX=1 to skip this test"
        );
        eprintln!("NOTICE: HOOKTUNNEL_SKIP_TMUX is set and tmux is missing; skipping");
        return None;
    }
    let tmux = Tmux {
        socket: format!("hooktunnel-test-{name}-{}", std::process::id()),
    };
    let shell = format!(
        "env -i PATH=/usr/bin:/bin HOME={} TERM=xterm-256color LANG=C.UTF-8 PS1='{PROMPT} ' sh",
        home.display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "30",
        &shell,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux.wait_for("the shell prompt", |s| s.contains(PROMPT));
    Some(tmux)
}

/// A local app that answers every request with 200 `ok`.
fn local_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Head, then as many body bytes as Content-Length says.
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

/// Sends one POST to `url` with a plain TcpStream; returns the status line.
fn post(url: &str, body: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, base) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = format!(
        "POST /{base}/hooks/tmux-test?x=1 HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn inspector_in_tmux_shows_opens_replays_and_quits() {
    let home = tempfile::tempdir().unwrap();
    let Some(tmux) = shell_in_tmux(home.path(), "show") else {
        return;
    };
    let app_port = local_app();

    let command = format!(
        "HOOKTUNNEL_HOME='{}' '{}' listen {app_port} --embedded-listen 127.0.0.1:0",
        home.path().display(),
        env!("CARGO_BIN_EXE_hooktunnel"),
    );
    tmux.keys(&[&command, "Enter"]);

    // The header shows the public URL.
    let screen = tmux.wait_for("the public URL", |s| {
        s.lines()
            .any(|l| l.contains("hooktunnel") && l.contains("/t/"))
    });
    let url = screen
        .lines()
        .find(|l| l.contains("/t/"))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://") && w.contains("/t/"))
        })
        .expect("a URL in the header")
        .to_owned();

    // A request shows as a row.
    let status = post(&url, r#"{"hello":"tmux"}"#);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    tmux.wait_for("the request's row", |s| {
        s.contains("/hooks/tmux-test?x=1") && s.contains("200")
    });

    // Enter opens it.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the detail", |s| {
        s.contains("[Request]") && s.contains("Body · 16 B · JSON")
    });
    // G scrolls the detail to the end: the pretty-printed body.
    tmux.keys(&["G"]);
    tmux.wait_for("the body", |s| s.contains(r#""hello": "tmux""#));

    // r replays it: a second row, marked as a replay.
    tmux.keys(&["r"]);
    let screen = tmux.wait_for("the replay row", |s| {
        s.matches("/hooks/tmux-test?x=1").count() >= 3 && s.contains('↻') && s.contains("replayed")
    });
    assert!(screen.contains("2 requests"), "{screen}");

    // q quits back to the shell, with the screen restored.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell again", |s| {
        let last = s
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        last.trim_end() == PROMPT && !s.contains("[Request]")
    });
    assert!(!screen.contains("Enter close"), "{screen}");
    let current = tmux.cmd(&[
        "display-message",
        "-p",
        "-t",
        "t",
        "#{pane_current_command}",
    ]);
    assert_eq!(String::from_utf8_lossy(&current.stdout).trim(), "sh");
}

/// True when the last non-blank line of the pane is the shell's prompt.
fn at_prompt(screen: &str) -> bool {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_end() == PROMPT)
}

/// `kill -TERM` and `kill -HUP` (as a supervisor or a closing terminal
/// sends) stop `inspect` and `listen` with the terminal restored: main
/// screen, cursor shown, no mouse reporting, cooked mode (the shell echoes
/// again).
#[test]
fn inspector_restores_the_terminal_on_sigterm_and_sighup() {
    let home = tempfile::tempdir().unwrap();
    let Some(tmux) = shell_in_tmux(home.path(), "signal") else {
        return;
    };
    let cases = [
        ("TERM", "inspect", "inspect · stored history"),
        ("HUP", "inspect", "inspect · stored history"),
        ("TERM", "listen 9 --embedded-listen 127.0.0.1:0", "/t/"),
    ];
    for (n, (signal, args, up)) in cases.into_iter().enumerate() {
        let pid_file = home.path().join(format!("{n}.pid"));
        // `exec` keeps the pid that `sh` wrote: the inspector's own.
        let command = format!(
            "HOOKTUNNEL_HOME='{}' sh -c 'echo $$ > \"$0\"; exec \"$1\" {args}' '{}' '{}'",
            home.path().display(),
            pid_file.display(),
            env!("CARGO_BIN_EXE_hooktunnel"),
        );
        // Type the command only once `clear` ran, so the screen shows it.
        tmux.keys(&["clear", "Enter"]);
        tmux.wait_for("a clear screen", |s| {
            at_prompt(s) && s.lines().filter(|l| !l.trim().is_empty()).count() == 1
        });
        tmux.keys(&[&command, "Enter"]);
        tmux.wait_for(&format!("hooktunnel {args}"), |s| {
            s.contains("hooktunnel") && s.contains(up)
        });
        assert_eq!(tmux.display("#{alternate_on}"), "1", "the inspector is up");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let pid = pid.trim();

        let sent = Command::new("kill")
            .args([&format!("-{signal}"), pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
        let screen = tmux.wait_for(&format!("the shell after SIG{signal}"), |s| {
            at_prompt(s) && !s.contains(up)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Command::new("kill")
            .args(["-0", pid])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "SIG{signal}: pid {pid} still runs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            tmux.display("#{alternate_on}"),
            "0",
            "SIG{signal} left the alternate screen on:\n{screen}"
        );
        assert_eq!(
            tmux.display("#{cursor_flag}"),
            "1",
            "SIG{signal}: cursor hidden"
        );
        assert_eq!(
            tmux.display("#{mouse_any_flag}#{mouse_button_flag}#{mouse_standard_flag}"),
            "000",
            "SIG{signal}: mouse reporting left on"
        );
        // Cooked mode: the shell echoes what is typed and runs it on Enter.
        tmux.keys(&[&format!("echo sig{signal}-ok"), "Enter"]);
        tmux.wait_for(&format!("the shell to echo after SIG{signal}"), |s| {
            s.lines().any(|l| l.trim_end() == format!("sig{signal}-ok")) && at_prompt(s)
        });
    }
}
