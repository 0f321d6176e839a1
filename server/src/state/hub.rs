//! The hub: every live frame is serialized here, once, and the same bytes go to every
//! websocket (`http::live` serves the sockets). A dashboard that connects gets the
//! overview; a frame nobody listens to is not even serialized.

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use app::live::{CardTick, LiveMessage, Overview};

/// Frames buffered per websocket before a slow client skips ahead to a fresh overview.
const CAPACITY: usize = 8;

#[derive(Clone, Debug)]
pub struct Hub {
    frames: broadcast::Sender<Utf8Bytes>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            frames: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Hub {
    /// Every frame from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.frames.subscribe()
    }

    pub fn has_listeners(&self) -> bool {
        self.frames.receiver_count() > 0
    }

    /// One tick of every card.
    pub fn publish_tick(
        &self,
        at_unix_ms: i64,
        cards: Vec<CardTick>,
        alerts: app::alerts::AlertsPulse,
    ) {
        if self.has_listeners() {
            self.send(&LiveMessage::Tick {
                at_unix_ms,
                cards,
                alerts,
            });
        }
    }

    /// A fresh overview (after a change, an action, or for a client that fell behind).
    pub fn publish_overview(&self, overview: impl FnOnce() -> Overview) {
        if self.has_listeners() {
            self.send(&LiveMessage::Overview(overview()));
        }
    }

    fn send(&self, message: &LiveMessage) {
        if let Some(frame) = frame(message) {
            // Nobody listening any more is fine: dashboards come and go.
            let _ = self.frames.send(frame);
        }
    }
}

/// A message as the bytes every socket gets.
pub fn frame(message: &LiveMessage) -> Option<Utf8Bytes> {
    match serde_json::to_string(message) {
        Ok(json) => Some(Utf8Bytes::from(json)),
        Err(err) => {
            tracing::error!(%err, "Cannot serialize a live frame");
            None
        }
    }
}
