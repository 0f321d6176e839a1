//! The live websocket (`/ws/live`): an axum route rather than a Leptos websocket server
//! function, because the hub shares one serialized frame between every socket (a server
//! function stream serializes per client) and needs per-socket control of pings, size
//! limits and slow-client handling.
//!
//! A client gets the full overview on connect, then each tick's frame. A client that falls
//! more than the hub's capacity behind is not waited for: it skips to a fresh overview.
//! One that cannot take a frame within [`SEND_TIMEOUT`] is disconnected. One that sends a
//! message over [`MAX_CLIENT_MESSAGE`] is closed with code 1009 (message too big).

use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use app::live::LiveMessage;

use crate::state::AppState;

/// nginx closes idle websockets after 60 s; a ping well inside that keeps them open.
const PING_EVERY: Duration = Duration::from_secs(20);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message a client may send; clients only send pongs and close frames. A larger
/// one closes the socket with 1009 (message too big).
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
/// What tungstenite buffers at most of one client message or frame. It is above
/// [`MAX_CLIENT_MESSAGE`] so a message somewhat over the cap is read whole and refused with
/// a proper close handshake; tungstenite stops reading at a frame header announcing more
/// than this, which leaves bytes unread, so that socket's close frame is followed by a TCP
/// reset (most clients still read the close frame first).
pub const READ_LIMIT: usize = 4 * MAX_CLIENT_MESSAGE;
/// How long a client refused with 1009 has to answer the close frame before the socket is
/// dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn live(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Counted before the upgrade so a crowd cannot open more than the limit between the
    // check and the sockets starting; the permit lives as long as the socket task.
    let Some(permit) = state.sockets.try_acquire() else {
        tracing::warn!(
            max = state.sockets.max(),
            "Refused a websocket: at the limit"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!(
                "websocket: this perfpilot already serves {} live connections (--max-websockets); try again shortly\n",
                state.sockets.max()
            ),
        )
            .into_response();
    };
    // axum's defaults (64 MiB messages, 16 MiB frames) would let one client make the
    // server buffer that much; clients only send pongs and close frames. tungstenite also
    // allocates a 128 KiB read buffer per socket by default; a small one keeps 1,000
    // dashboards cheap. The cap itself ([`MAX_CLIENT_MESSAGE`]) is checked in `serve`,
    // which can still answer with a close frame; tungstenite's limit only bounds memory.
    ws.max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .read_buffer_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            serve(socket, state).await;
            drop(permit);
        })
}

fn overview_frame(state: &AppState) -> Option<Utf8Bytes> {
    crate::state::hub::frame(&LiveMessage::Overview(state.monitor.overview()))
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn serve(mut socket: WebSocket, state: AppState) {
    // Subscribe before taking the overview so no tick falls between the two.
    let mut frames = state.monitor.hub.subscribe();
    let Some(hello) = overview_frame(&state) else {
        return;
    };
    if !send(&mut socket, Message::Text(hello)).await {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(RecvError::Lagged(_)) => match overview_frame(&state) {
                        Some(frame) => frame,
                        None => break,
                    },
                    Err(RecvError::Closed) => break,
                };
                if !send(&mut socket, Message::Text(frame)).await {
                    tracing::debug!("Dropping a websocket client that stopped reading");
                    break;
                }
            }
            _ = ping.tick() => {
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(text))) if text.len() > MAX_CLIENT_MESSAGE => {
                    close_too_big(socket, Some(text.len())).await;
                    break;
                }
                Some(Ok(Message::Binary(bytes))) if bytes.len() > MAX_CLIENT_MESSAGE => {
                    close_too_big(socket, Some(bytes.len())).await;
                    break;
                }
                Some(Err(err)) => {
                    if is_too_big(&err) {
                        close_too_big(socket, None).await;
                    } else {
                        tracing::debug!(%err, "A websocket client failed");
                    }
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// tungstenite refused a message or frame over [`READ_LIMIT`].
fn is_too_big(err: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    std::error::Error::source(err)
        .and_then(|inner| inner.downcast_ref::<Error>())
        .is_some_and(|inner| matches!(inner, Error::Capacity(CapacityError::MessageTooLong { .. })))
}

/// Closes a socket whose client sent a message over [`MAX_CLIENT_MESSAGE`] with 1009
/// (message too big). When the message was read whole (its `size` is known), it waits
/// briefly for the client's close frame, so the connection ends with the closing
/// handshake rather than a reset; past [`READ_LIMIT`] tungstenite cannot read on, so the
/// socket is dropped right after the close frame.
async fn close_too_big(mut socket: WebSocket, size: Option<usize>) {
    tracing::debug!(
        ?size,
        max = MAX_CLIENT_MESSAGE,
        "Closing a websocket whose client sent a message over the cap"
    );
    let frame = CloseFrame {
        code: close_code::SIZE,
        reason: Utf8Bytes::from_static("message too big"),
    };
    if !send(&mut socket, Message::Close(Some(frame))).await || size.is_none() {
        return;
    }
    // After our close frame the stream ends once the client answers it.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}
