//! `hooktunnel release NAME`: free a tunnel name on the relay, after saying
//! how many queued requests go with it.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::agent::{self, AgentOptions, release::release};
use crate::cli::ReleaseArgs;
use crate::config::{ConfigFile, Paths};

/// Runs `release`.
pub async fn run(args: &ReleaseArgs, paths: &Paths) -> anyhow::Result<()> {
    let config_path = paths.config_file();
    let config = ConfigFile::load(&config_path)?;
    let Some(key) = config.agent_key.clone() else {
        anyhow::bail!(
            "this machine has no agent key yet ({} has none), so it holds no tunnel names",
            config_path.display()
        );
    };
    let Some(relay) = args.relay.clone().or_else(|| config.relay.clone()) else {
        anyhow::bail!("names live on a relay: pass --relay URL (or set HOOKTUNNEL_RELAY)");
    };
    let relays = agent::relay_list(&relay);
    let opts = AgentOptions {
        relay: relays.first().cloned().unwrap_or_else(|| relay.clone()),
        relays,
        token: args.token.clone().or_else(|| config.token.clone()),
        name: None,
        key: Some(key),
        mode: Default::default(),
        queued_response: None,
        ca_cert: args.ca_cert.clone(),
        ping_interval: hooktunnel_relay::protocol::PING_INTERVAL,
        host: agent::host_name(),
        instance: agent::new_instance_id(),
        more: Vec::new(),
        takeover: false,
        rules: Default::default(),
    };
    let hint = config_path.display().to_string();
    let name = &args.name;
    let preview = release(&opts, &hint, name, true).await?;
    let queued = match preview.queued {
        1 => "its 1 queued request".to_owned(),
        n => format!("its {n} queued requests"),
    };
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "refusing to release '{name}' without confirmation ({queued} would be deleted); pass --yes"
            );
        }
        let mut err = std::io::stderr().lock();
        write!(
            err,
            "Release '{name}' on {relay}? {} will be deleted and anyone may claim the name. [y/N] ",
            capitalise(&queued)
        )?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            writeln!(err, "Nothing released.")?;
            return Ok(());
        }
    }
    let done = release(&opts, &hint, name, false).await?;
    let deleted = match done.queued {
        1 => "1 queued request".to_owned(),
        n => format!("{n} queued requests"),
    };
    writeln!(
        std::io::stdout(),
        "Released '{}' on {relay}; deleted {deleted}.",
        done.name
    )?;
    Ok(())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
