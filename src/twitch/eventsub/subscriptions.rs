//! The subscription set: which logins are wanted (and their user ids, looked up once), which
//! subscriptions Twitch holds for our conduit, what Twitch revoked, the app's cost figures,
//! and from all that the next change to make. Pure: the EventSub task makes the requests.

use std::collections::{BTreeSet, HashMap, HashSet};

use recbot_commands::Login;

use super::conduit::{Listing, SubKind, USERS_PER_REQUEST};

/// A subscription by what it watches: (broadcaster id, type).
pub type Key = (String, SubKind);

/// The next request towards the wanted set.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Read Twitch's list (at start, after a conflict, for an id not known).
    List,
    /// Look up the user ids of these logins.
    LookUp(Vec<Login>),
    /// Delete a subscription no longer wanted (or no longer enabled).
    Delete { id: String, key: Key },
    /// Create a missing one.
    Create(Key),
}

#[derive(Debug, Default)]
pub struct SubscriptionSet {
    wanted: Vec<Login>,
    /// User ids by login; `None`: Twitch knows no such user.
    ids: HashMap<Login, Option<String>>,
    /// Held subscriptions: their id (`None`: Twitch has it, the id is not known yet).
    held: HashMap<Key, Option<String>>,
    /// Held but not enabled (revoked and such): deleted, never counted as held.
    stale: HashMap<String, Key>,
    /// Revoked by Twitch: not made again while the login stays wanted.
    revoked: HashSet<Key>,
    listed: bool,
    total_cost: u64,
    max_total_cost: u64,
}

impl SubscriptionSet {
    /// Replaces the wanted logins; what Twitch revoked of logins no longer wanted is forgotten.
    pub fn want(&mut self, logins: Vec<Login>) {
        self.wanted = logins;
        let wanted = self.wanted_ids();
        self.revoked.retain(|(id, _)| wanted.contains(id));
    }

    /// Twitch's list is to be read again before the next change (a new session, a new conduit).
    pub fn relist(&mut self) {
        self.listed = false;
    }

    /// Takes Twitch's list: enabled subscriptions are held, the others are deleted.
    pub fn listed(&mut self, listing: Listing) {
        self.held.clear();
        self.stale.clear();
        for sub in listing.ours {
            let key = (sub.broadcaster_id, sub.kind);
            if sub.status == "enabled" {
                self.held.insert(key, Some(sub.id));
            } else {
                self.stale.insert(sub.id, key);
            }
        }
        self.total_cost = listing.total_cost;
        self.max_total_cost = listing.max_total_cost;
        self.listed = true;
    }

    pub fn looked_up(&mut self, asked: &[Login], found: HashMap<Login, String>) {
        for login in asked {
            self.ids.insert(login.clone(), found.get(login).cloned());
        }
    }

    pub fn created(&mut self, key: Key, id: Option<String>, total: Option<u64>, max: Option<u64>) {
        if id.is_some() {
            self.total_cost = total.unwrap_or(self.total_cost + 1);
        }
        if let Some(max) = max {
            self.max_total_cost = max;
        }
        self.held.insert(key, id);
    }

    /// Twitch refused a create for cost: its limit is what is held now.
    pub fn cost_exceeded(&mut self) {
        self.max_total_cost = self.total_cost;
    }

    pub fn deleted(&mut self, id: &str, key: &Key) {
        if self.stale.remove(id).is_none() && self.held.remove(key).is_some() {
            self.total_cost = self.total_cost.saturating_sub(1);
        }
    }

    /// Twitch revoked subscription `id`; the key it had, if it was ours.
    pub fn revoked(&mut self, id: &str) -> Option<Key> {
        let key = self
            .held
            .iter()
            .find(|(_, held)| held.as_deref() == Some(id))
            .map(|(key, _)| key.clone())?;
        self.held.remove(&key);
        self.total_cost = self.total_cost.saturating_sub(1);
        self.revoked.insert(key.clone());
        Some(key)
    }

    /// The wanted login with user id `id`.
    pub fn login_of(&self, id: &str) -> Option<Login> {
        self.wanted
            .iter()
            .find(|l| self.ids.get(*l).and_then(|i| i.as_deref()) == Some(id))
            .cloned()
    }

    fn wanted_ids(&self) -> HashSet<String> {
        self.wanted
            .iter()
            .filter_map(|l| self.ids.get(l).cloned().flatten())
            .collect()
    }

    /// Subscriptions held (enabled).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Subscriptions wanted: two per wanted login Twitch knows.
    pub fn wanted(&self) -> usize {
        2 * self.wanted_ids().len()
    }

    /// Creates are waiting but the app's cost limit is reached.
    pub fn full(&self) -> bool {
        self.listed && self.next_create().is_some() && !self.can_afford()
    }

    fn can_afford(&self) -> bool {
        self.total_cost < self.max_total_cost
    }

    /// The next request, or `None` when converged (or only creates beyond the cost limit
    /// remain).
    pub fn next(&self) -> Option<Step> {
        if !self.listed {
            return Some(Step::List);
        }
        let unknown: Vec<Login> = self
            .wanted
            .iter()
            .filter(|l| !self.ids.contains_key(*l))
            .take(USERS_PER_REQUEST)
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Some(Step::LookUp(unknown));
        }
        if let Some((id, key)) = self.stale.iter().next() {
            return Some(Step::Delete {
                id: id.clone(),
                key: key.clone(),
            });
        }
        let wanted = self.wanted_ids();
        let unwanted = self
            .held
            .iter()
            .filter(|((who, _), _)| !wanted.contains(who))
            .min_by(|a, b| a.0.cmp(b.0));
        if let Some((key, id)) = unwanted {
            return Some(match id {
                Some(id) => Step::Delete {
                    id: id.clone(),
                    key: key.clone(),
                },
                None => Step::List,
            });
        }
        match self.next_create() {
            Some(key) if self.can_afford() => Some(Step::Create(key)),
            _ => None,
        }
    }

    fn next_create(&self) -> Option<Key> {
        let mut seen = BTreeSet::new();
        for login in &self.wanted {
            let Some(Some(id)) = self.ids.get(login) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            for kind in SubKind::BOTH {
                let key = (id.clone(), kind);
                if !self.held.contains_key(&key) && !self.revoked.contains(&key) {
                    return Some(key);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::conduit::Subscription;
    use super::*;

    fn login(s: &str) -> Login {
        Login::parse(s).unwrap()
    }

    fn listing(subs: &[(&str, &str, SubKind, &str)], total: u64, max: u64) -> Listing {
        Listing {
            ours: subs
                .iter()
                .map(|(id, who, kind, status)| Subscription {
                    id: id.to_string(),
                    kind: *kind,
                    broadcaster_id: who.to_string(),
                    status: status.to_string(),
                })
                .collect(),
            total_cost: total,
            max_total_cost: max,
        }
    }

    /// Plays Twitch for `set` until it has nothing left to do; the steps taken.
    fn converge(set: &mut SubscriptionSet, users: &HashMap<&str, &str>) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut n = 0;
        while let Some(step) = set.next() {
            steps.push(step.clone());
            match step {
                Step::List => set.listed(Listing {
                    max_total_cost: 10_000,
                    ..Listing::default()
                }),
                Step::LookUp(logins) => {
                    let found = logins
                        .iter()
                        .filter_map(|l| Some((l.clone(), users.get(l.as_str())?.to_string())))
                        .collect();
                    set.looked_up(&logins, found);
                }
                Step::Delete { id, key } => set.deleted(&id, &key),
                Step::Create(key) => {
                    n += 1;
                    set.created(key, Some(format!("sub{n}")), None, None)
                }
            }
            assert!(steps.len() < 10_000, "converges");
        }
        steps
    }

    #[test]
    fn converges_to_two_subscriptions_per_known_login_and_deletes_the_rest() {
        let users = HashMap::from([("foo", "1"), ("bar", "2")]);
        let mut set = SubscriptionSet::default();
        set.want(vec![login("bar"), login("foo"), login("ghost")]);
        let steps = converge(&mut set, &users);
        assert_eq!(steps[0], Step::List);
        assert!(matches!(&steps[1], Step::LookUp(l) if l.len() == 3));
        assert_eq!(steps.len(), 2 + 4, "{steps:?}");
        assert_eq!((set.held(), set.wanted()), (4, 4));
        // foo removed: its two subscriptions go, nothing else.
        set.want(vec![login("bar")]);
        let steps = converge(&mut set, &users);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(steps
            .iter()
            .all(|s| matches!(s, Step::Delete { key, .. } if key.0 == "1")));
        assert_eq!((set.held(), set.wanted()), (2, 2));
    }

    #[test]
    fn a_listing_is_trusted_and_stale_subscriptions_are_deleted() {
        let users = HashMap::from([("foo", "1")]);
        let mut set = SubscriptionSet::default();
        set.want(vec![login("foo")]);
        set.listed(listing(
            &[
                ("a", "1", SubKind::Online, "enabled"),
                ("b", "1", SubKind::Offline, "authorization_revoked"),
            ],
            1,
            10,
        ));
        let steps = converge(&mut set, &users);
        assert_eq!(
            steps[1..],
            [
                Step::Delete {
                    id: "b".into(),
                    key: ("1".into(), SubKind::Offline)
                },
                Step::Create(("1".into(), SubKind::Offline)),
            ],
        );
    }

    #[test]
    fn stops_at_the_cost_limit_and_says_so() {
        let mut set = SubscriptionSet::default();
        let logins: Vec<Login> = (0..10).map(|i| login(&format!("u{i}"))).collect();
        set.want(logins.clone());
        set.listed(listing(&[], 0, 5));
        set.looked_up(
            &logins,
            logins
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), i.to_string()))
                .collect(),
        );
        let mut made = 0;
        while let Some(Step::Create(key)) = set.next() {
            made += 1;
            set.created(key, Some(made.to_string()), None, None);
        }
        assert_eq!(made, 5);
        assert!(set.full());
        assert_eq!((set.held(), set.wanted()), (5, 20));
        // Fewer logins: nothing to create beyond the limit, no longer full.
        set.want(logins[..2].to_vec());
        while let Some(step) = set.next() {
            match step {
                Step::Delete { id, key } => set.deleted(&id, &key),
                Step::Create(key) => set.created(key, Some("x".into()), None, None),
                other => panic!("{other:?}"),
            }
        }
        assert!(!set.full());
        assert_eq!(set.held(), 4);
    }

    #[test]
    fn a_revoked_subscription_is_not_made_again_until_its_login_is_readded() {
        let users = HashMap::from([("foo", "1")]);
        let mut set = SubscriptionSet::default();
        set.want(vec![login("foo")]);
        converge(&mut set, &users);
        let online = set.held[&("1".to_string(), SubKind::Online)]
            .clone()
            .unwrap();
        assert_eq!(set.revoked(&online), Some(("1".into(), SubKind::Online)));
        assert_eq!(set.revoked("unknown"), None);
        assert!(converge(&mut set, &users).is_empty());
        assert_eq!(set.login_of("1"), Some(login("foo")));
        set.want(vec![]);
        set.want(vec![login("foo")]);
        assert_eq!(
            set.next(),
            Some(Step::Create(("1".into(), SubKind::Online)))
        );
    }

    #[test]
    fn a_conflict_is_resolved_by_listing() {
        let mut set = SubscriptionSet::default();
        set.want(vec![login("foo")]);
        set.listed(listing(&[], 0, 10));
        set.looked_up(&[login("foo")], HashMap::from([(login("foo"), "1".into())]));
        // 409: Twitch has it; we do not know its id.
        set.created(("1".into(), SubKind::Online), None, None, None);
        set.want(vec![]);
        assert_eq!(set.next(), Some(Step::List));
    }
}
