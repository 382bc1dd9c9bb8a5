//! Freeing a tunnel name on the relay (`hooktunnel release`): a socket that
//! opens with `release` instead of `hello`, authenticated by the agent key.

use futures_util::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

use hooktunnel_relay::protocol::{
    AgentMessage, ErrorCode, PROTOCOL_VERSION, RelayMessage, Release, Released,
};

use super::{AgentError, AgentOptions, next_reply, open_socket};
use crate::error_chain::root_cause;

/// Asks the relay to free `name` for `opts.key` (with `dry_run`, only to say
/// how many queued requests that would delete).
pub async fn release(
    opts: &AgentOptions,
    config_hint: &str,
    name: &str,
    dry_run: bool,
) -> Result<Released, AgentError> {
    let key = opts.key.clone().ok_or_else(|| {
        AgentError::Protocol("this machine has no agent key, so it owns no tunnel names".into())
    })?;
    let mut socket = open_socket(opts, config_hint).await?;
    let ask = AgentMessage::Release(Release {
        version: PROTOCOL_VERSION,
        name: name.to_owned(),
        key,
        dry_run,
    });
    socket
        .send(Message::Binary(ask.encode()))
        .await
        .map_err(|e| AgentError::Lost(root_cause(&e)))?;
    let answer = next_reply(&mut socket).await;
    let _ = socket.close(None).await;
    match answer {
        Ok(RelayMessage::Released(released)) => Ok(released),
        Ok(_) => Err(AgentError::Protocol("expected an answer to release".into())),
        // A relay from before `release` cannot decode the message.
        Err(AgentError::Refused {
            code: ErrorCode::MalformedFrame,
            ..
        }) => Err(AgentError::Protocol(
            "this relay cannot release names; upgrade hooktunnel-relay".into(),
        )),
        Err(e) => Err(e),
    }
}
