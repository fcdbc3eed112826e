//! Requests workers make of the core when a state change must be durable before they go on (a
//! new token, an upload's confirmed offset, a quota reservation). The core applies each in
//! order with the events, persists it, announces what there is to announce, and only then
//! acknowledges. Workers hold a [`Calls`] handle; the core serves [`Call`]s.

use anyhow::{anyhow, Result};
use chrono::{DateTime, NaiveDate, Utc};
use recbot_commands::Service;
use tokio::sync::{mpsc, oneshot};

use super::jobs::JobUpdate;
use super::tokens::StoredToken;

/// The answer to a reservation in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// One upload counted on this Pacific day.
    Counted(NaiveDate),
    /// The daily limit is reached; it resets then.
    Full(DateTime<Utc>),
}

/// One request with its acknowledgement.
#[derive(Debug)]
pub(crate) enum Call {
    /// Store a token set (after a code exchange or a refresh). A set without a refresh token
    /// keeps the stored one (Google omits it on refresh).
    SaveToken {
        service: Service,
        token: StoredToken,
        ack: oneshot::Sender<Result<()>>,
    },
    /// An authorization succeeded: the pending one is cleared, `AuthCompleted` announced and
    /// what waited for it resumed.
    AuthCompleted {
        service: Service,
        account: Option<String>,
        ack: oneshot::Sender<Result<()>>,
    },
    /// A worker found the stored authorization unusable (revoked, expired, missing): the core
    /// starts a new authorization and posts its link with `AuthRequired`.
    AuthNeeded { service: Service, reason: String },
    /// A change to an upload job.
    Job {
        update: JobUpdate,
        ack: oneshot::Sender<Result<()>>,
    },
    /// Count one upload against today's ledger; answers the next reset instead when the
    /// daily limit is reached (nothing is counted then).
    ReserveQuota {
        ack: oneshot::Sender<Result<Reservation>>,
    },
    /// Give back an upload counted on `day` whose session could not be opened (YouTube did
    /// not take the request: a server error, a reset, a refused access token).
    ReleaseQuota {
        day: NaiveDate,
        ack: oneshot::Sender<Result<()>>,
    },
    /// Keep the EventSub conduit's id (a new conduit was created), so that the next start
    /// reuses the conduit and its subscriptions.
    SaveConduit {
        id: String,
        ack: oneshot::Sender<Result<()>>,
    },
}

/// The workers' handle for [`Call`]s. Every method waits for the core's acknowledgement.
#[derive(Debug, Clone)]
pub struct Calls {
    tx: mpsc::Sender<Call>,
}

impl Calls {
    /// A handle on `tx`: the core's call queue (the core serves the receiving end).
    pub(crate) fn new(tx: mpsc::Sender<Call>) -> Calls {
        Calls { tx }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Call) -> Result<T> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(make(ack))
            .await
            .map_err(|_| anyhow!("the core has stopped"))?;
        done.await
            .map_err(|_| anyhow!("the core stopped before confirming"))?
    }

    pub async fn save_token(&self, service: Service, token: StoredToken) -> Result<()> {
        self.call(|ack| Call::SaveToken {
            service,
            token,
            ack,
        })
        .await
    }

    pub async fn auth_completed(&self, service: Service, account: Option<String>) -> Result<()> {
        self.call(|ack| Call::AuthCompleted {
            service,
            account,
            ack,
        })
        .await
    }

    /// Asks for a new authorization; returns once the core has the request.
    pub async fn auth_needed(&self, service: Service, reason: String) {
        let _ = self.tx.send(Call::AuthNeeded { service, reason }).await;
    }

    pub(crate) async fn job(&self, update: JobUpdate) -> Result<()> {
        self.call(|ack| Call::Job { update, ack }).await
    }

    /// Counts one upload (one `videos.insert`) against today's ledger, or says when the full
    /// ledger resets.
    pub async fn reserve_quota(&self) -> Result<Reservation> {
        self.call(|ack| Call::ReserveQuota { ack }).await
    }

    /// Stores the EventSub conduit's id; returns once it is persisted.
    pub async fn save_conduit_id(&self, id: String) -> Result<()> {
        self.call(|ack| Call::SaveConduit { id, ack }).await
    }

    /// Gives back a reservation of `day` that YouTube never charged.
    pub async fn release_quota(&self, day: NaiveDate) -> Result<()> {
        self.call(|ack| Call::ReleaseQuota { day, ack }).await
    }
}
