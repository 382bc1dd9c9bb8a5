//! The tunnels one agent session serves (`listen --all`): the relay names
//! the tunnel in each request, queued delivery and refusal note, and this
//! picks the pipeline that handles it.

use std::sync::Arc;

use hooktunnel_protocol::Welcome;

use super::Pipeline;

/// The tunnels one session serves, first the one its hello names; requests,
/// acks and notes name theirs (unnamed: the first).
#[derive(Clone)]
pub struct Tunnels(Arc<[Arc<Pipeline>]>);

impl Tunnels {
    /// The pipelines, first the session's own tunnel; `None` when empty.
    pub fn new(pipelines: Vec<Arc<Pipeline>>) -> Option<Self> {
        (!pipelines.is_empty()).then(|| Self(pipelines.into()))
    }

    /// The session's own tunnel (the one its hello names).
    pub fn first(&self) -> &Arc<Pipeline> {
        &self.0[0]
    }

    /// The tunnel called `name` (unnamed: the first); `None` when this
    /// agent does not serve it.
    pub fn get(&self, name: Option<&str>) -> Option<&Arc<Pipeline>> {
        pick(self.0.iter().map(|p| p.is_named_as(name)), name).map(|i| &self.0[i])
    }

    /// Every tunnel, the session's own first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Pipeline>> {
        self.0.iter()
    }

    /// Takes the names the relay granted, in the hello's order.
    pub fn rename(&self, welcome: &Welcome) {
        let granted = std::iter::once(&welcome.name).chain(welcome.more.iter().map(|w| &w.name));
        for (pipeline, name) in self.0.iter().zip(granted) {
            if let Ok(mut current) = pipeline.tunnel.write() {
                current.clone_from(name);
            }
        }
    }
}

/// Which of the tunnels (each saying whether it bears the wanted name) a
/// request is for: unnamed means the first; a name nobody bears, none.
fn pick(named: impl Iterator<Item = bool>, name: Option<&str>) -> Option<usize> {
    match name {
        None => Some(0),
        Some(_) => named.into_iter().position(|yes| yes),
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn a_request_goes_to_the_tunnel_it_names_or_else_the_first() {
        assert_eq!(pick([false, true].into_iter(), Some("hooks")), Some(1));
        assert_eq!(pick([false, false].into_iter(), None), Some(0));
        assert_eq!(pick([false, false].into_iter(), Some("gone")), None);
    }
}
