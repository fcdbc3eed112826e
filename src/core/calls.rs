//! The core's side of the workers' [`Calls`] (`work::calls`): each call is applied in order
//! with the events, persisted, announced, and only then acknowledged. Beside them comes the
//! core's own [`CheckedAdd`], served in the same places.

use recbot_commands::AddRequest;
use tokio::sync::oneshot;

use super::{Core, Origin, Reply};
use crate::work::{Call, Calls};

/// `add hls` whose source was checked off the core loop (its name resolved to allowed
/// addresses): the core task applies it now; the acknowledgement is the command's reply. It
/// has its own queue because it carries a front-end's [`Origin`] and answers a [`Reply`], which
/// workers' [`Call`]s know nothing of.
#[derive(Debug)]
pub(super) struct CheckedAdd {
    pub request: AddRequest,
    pub origin: Origin,
    /// The channel's display name, when its platform was asked (Chzzk).
    pub display_name: Option<String>,
    pub ack: oneshot::Sender<Reply>,
}

impl Core {
    /// A handle for workers' calls (and for tests that play a worker).
    pub fn calls(&self) -> Calls {
        Calls::new(self.calls_tx.clone())
    }

    pub(super) async fn handle_call(&mut self, call: Call) {
        match call {
            Call::SaveToken {
                service,
                token,
                ack,
            } => {
                let _ = ack.send(self.save_token(service, token).await);
            }
            Call::AuthCompleted {
                service,
                account,
                ack,
            } => {
                let _ = ack.send(self.auth_completed(service, account).await);
            }
            Call::AuthNeeded { service, reason } => self.auth_needed(service, reason).await,
            Call::Job { update, ack } => {
                let _ = ack.send(self.update_job(update).await);
            }
            Call::ReserveQuota { ack } => {
                let _ = ack.send(self.reserve_quota().await);
            }
            Call::ReleaseQuota { day, ack } => {
                let _ = ack.send(self.store.release_quota(day).await);
            }
            Call::SaveConduit { id, ack } => {
                let saved = self
                    .store
                    .put_setting(super::store::EVENTSUB_CONDUIT, &id)
                    .await;
                let _ = ack.send(saved);
            }
        }
    }

    /// An `add` whose source was checked ([`CheckedAdd`]): applied, and its reply sent.
    pub(super) async fn handle_add(&mut self, add: CheckedAdd) {
        let _ = add.ack.send(
            self.add_checked(add.request, add.origin, add.display_name)
                .await,
        );
    }
}
