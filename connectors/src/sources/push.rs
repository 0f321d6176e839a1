//! Custom metrics that users' programs push (`POST /api/push`), as a source.
//!
//! The HTTP route authorizes, rate-limits and validates a whole body first (see
//! `server::http::push`); only then does it hand the samples to [`PushIngest::store`],
//! which resolves once the monitor has stored them, all or nothing, and says how each
//! sample was stored (late, duplicate and too-old samples are reported, not errors). Going
//! through the monitor keeps it the only writer of history.

use engine::history::Appended;
use engine::push::PushedSample;
use engine::series::UnixMillis;
use engine::source::runtime::{NotStored, Source, SourceContext};
use engine::source::{Batch, BoxFuture, SourceHealth, SourceInfo};
use tokio::sync::{mpsc, oneshot};

/// The id of the push source.
pub const SOURCE_ID: &str = "push";
/// The resources it owns: every `custom:<id>`.
pub const OWNS: &str = "custom:*";
/// Pushed samples show a change at the pusher's pace, which perfpilot does not know.
pub const SETTLE: engine::verdict::Settle = engine::verdict::DEFAULT_SETTLE;

/// Pushes waiting for the monitor; a full queue makes pushers wait (their requests are
/// already rate-limited per client).
const QUEUE: usize = 256;

struct Pushed {
    samples: Vec<PushedSample>,
    at: UnixMillis,
    reply: oneshot::Sender<Result<Vec<Appended>, NotStored>>,
}

/// The HTTP side's handle: cheap to clone.
#[derive(Clone, Debug)]
pub struct PushIngest {
    sender: mpsc::Sender<Pushed>,
}

impl PushIngest {
    /// Stores validated samples (received at `at`) and says how each was stored; the
    /// error is why nothing was stored.
    pub async fn store(
        &self,
        samples: Vec<PushedSample>,
        at: UnixMillis,
    ) -> Result<Vec<Appended>, NotStored> {
        let (reply, stored) = oneshot::channel();
        self.sender
            .send(Pushed { samples, at, reply })
            .await
            .map_err(|_| NotStored::Stopped)?;
        stored.await.map_err(|_| NotStored::Stopped)?
    }
}

/// The source end, run by the source runtime.
pub struct PushSource {
    receiver: mpsc::Receiver<Pushed>,
}

/// A push source and the handle the HTTP route uses to feed it.
pub fn source() -> (PushSource, PushIngest) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    (PushSource { receiver }, PushIngest { sender })
}

impl Source for PushSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            id: SOURCE_ID.to_owned(),
            kind: "push".to_owned(),
            resources: Vec::new(),
            owns: vec![OWNS.to_owned()],
        }
    }

    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut receiver = self.receiver;
            let mut up = false;
            loop {
                let pushed = tokio::select! {
                    _ = ctx.stopped() => break,
                    pushed = receiver.recv() => pushed,
                };
                let Some(Pushed { samples, at, reply }) = pushed else {
                    break;
                };
                let stored = ctx.emit_acked(Batch::Samples(samples), at).await;
                if stored.is_ok() && !up {
                    up = true;
                    ctx.set_health(SourceHealth::Up { since_unix_ms: at });
                }
                // The pusher may have gone away; its samples are stored all the same.
                let _ = reply.send(stored);
            }
        })
    }
}
