//! Whether each chat front-end is connected to its platform right now, for `/readyz`. Each
//! front-end owns its own [`Link`] and reports its state changes through it; [`Presence`]
//! only reads them. A front-end that is not configured has no link, so it never makes the
//! service unready.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

/// One front-end's connection as its owner last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Started, not connected yet.
    Connecting,
    /// Connected: commands can arrive.
    Connected,
    /// Lost or refused, with why; the front-end is reconnecting (or has given up).
    Down(String),
}

/// A front-end's handle to report its own connection state. Dropping it (the front-end
/// stopped) leaves the last state in place, as the front-end is no longer there to connect.
#[derive(Debug, Clone)]
pub struct Link {
    state: Arc<watch::Sender<Since>>,
}

impl Link {
    /// A link nobody reads (front-ends started without a [`Presence`], as in most tests).
    pub fn detached() -> Link {
        let (state, _) = watch::channel((LinkState::Connecting, Instant::now()));
        Link {
            state: Arc::new(state),
        }
    }

    /// Reports `state`; the time since it changed is kept only when it really changes.
    pub fn report(&self, state: LinkState) {
        self.state.send_if_modified(|(current, since)| {
            if *current == state {
                return false;
            }
            *current = state;
            *since = Instant::now();
            true
        });
    }
}

impl Default for Link {
    fn default() -> Self {
        Link::detached()
    }
}

/// A front-end that is not connected, for `/readyz` to word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    pub front_end: &'static str,
    pub state: LinkState,
    /// Seconds since it entered this state.
    pub for_secs: u64,
}

/// A state and since when it holds.
type Since = (LinkState, Instant);

/// The connection states of the configured front-ends (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Presence {
    links: Arc<Mutex<Vec<Watched>>>,
}

/// A front-end's name and its link's latest state.
type Watched = (&'static str, watch::Receiver<Since>);

impl Presence {
    /// A link for `front_end` ("Slack", "Discord"), read from now on.
    pub fn link(&self, front_end: &'static str) -> Link {
        let (state, seen) = watch::channel((LinkState::Connecting, Instant::now()));
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((front_end, seen));
        Link {
            state: Arc::new(state),
        }
    }

    /// The front-ends that are not connected, in the order they were linked.
    pub fn absent(&self) -> Vec<Absent> {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links
            .iter()
            .filter_map(|(front_end, seen)| {
                let (state, since) = seen.borrow().clone();
                (state != LinkState::Connected).then(|| Absent {
                    front_end,
                    state,
                    for_secs: since.elapsed().as_secs(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_linked_front_ends_that_are_not_connected_are_absent() {
        let presence = Presence::default();
        assert!(presence.absent().is_empty(), "nothing configured: ready");
        let slack = presence.link("Slack");
        let discord = presence.link("Discord");
        let names =
            |p: &Presence| -> Vec<&str> { p.absent().iter().map(|a| a.front_end).collect() };
        assert_eq!(names(&presence), ["Slack", "Discord"]);
        slack.report(LinkState::Connected);
        assert_eq!(names(&presence), ["Discord"]);
        discord.report(LinkState::Down("closed 4000".into()));
        assert_eq!(
            presence.absent()[0].state,
            LinkState::Down("closed 4000".into())
        );
        discord.report(LinkState::Connected);
        assert!(presence.absent().is_empty());
        // A link nobody reads takes reports without effect.
        Link::detached().report(LinkState::Connected);
    }
}
