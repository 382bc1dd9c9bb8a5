//! `hooktunnel release NAME`: an agent socket that opens with `release`
//! instead of `hello` frees a name its key owns, deleting the name's queue.

use crate::durable::{DurableError, Release as Freed};
use crate::name;
use crate::protocol::{ErrorCode, Release, Released};
use crate::session;
use crate::state::AppState;

/// Frees a name for its key (or, on a dry run, says what that would delete).
/// A name in use is not freed: its agent must stop first.
pub(super) async fn release_name(
    state: &AppState,
    release: &Release,
) -> Result<Released, (ErrorCode, String)> {
    let name = &release.name;
    name::validate(name).map_err(|e| (ErrorCode::InvalidName, e.to_string()))?;
    let internal = |e: DurableError| {
        tracing::error!(error = %e, "name registry failed");
        (
            ErrorCode::Unknown,
            "the relay could not read its name registry; try again".to_owned(),
        )
    };
    let check = |outcome: Freed| match outcome {
        Freed::Released { queued } => Ok(queued),
        Freed::Unknown => Err((
            ErrorCode::UnknownName,
            format!("no agent key holds the tunnel name '{name}' on this relay"),
        )),
        Freed::NotOwner => Err((
            ErrorCode::NameTaken,
            format!("tunnel name '{name}' belongs to another agent key"),
        )),
    };
    let queued = check(
        state
            .durable
            .release(name, &release.key, true)
            .await
            .map_err(internal)?,
    )?;
    if let Some(live) = state.tunnel(name) {
        return Err((
            ErrorCode::AlreadyOnline,
            format!(
                "{name} is online from host {} since {}; stop that listen first, then release the name",
                live.host.as_deref().unwrap_or("(unknown)"),
                session::utc_hh_mm(live.since_ms)
            ),
        ));
    }
    if release.dry_run {
        return Ok(Released {
            name: name.clone(),
            queued,
            released: false,
        });
    }
    let queued = check(
        state
            .durable
            .release(name, &release.key, false)
            .await
            .map_err(internal)?,
    )?;
    // A freed name is anyone's again: its rules go with it.
    state.set_edge_rules(name, crate::protocol::rules::EdgeRules::default());
    Ok(Released {
        name: name.clone(),
        queued,
        released: true,
    })
}
