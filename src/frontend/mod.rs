//! Front-ends: where operators type commands and read events. Each one turns platform input
//! into command text plus an [`Origin`](crate::core::Origin), hands it to the core, and renders
//! replies and notices back. Only this folder knows chat platforms. Webhooks (`webhook.rs`)
//! and e-mail digests (`email.rs`) receive the same notices for outside automation and people.

pub mod ack;
pub mod console;
pub mod delivery;
pub mod discord;
pub mod email;
pub mod http;
pub mod presence;
pub mod render;
pub mod slack;
mod slack_home;
pub mod webhook;
