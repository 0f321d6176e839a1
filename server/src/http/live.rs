//! The live websocket (`/ws/live`): an axum route rather than a Leptos websocket server
//! function, because the hub shares one serialized frame between every socket (a server
//! function stream serializes per client) and needs per-socket control of pings, size
//! limits and slow-client handling.
//!
//! A client gets the full overview on connect, then each tick's frame. A client that falls
//! more than the hub's capacity behind is not waited for: it skips to a fresh overview.
//! One that cannot take a frame within [`SEND_TIMEOUT`] is disconnected.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use app::live::LiveMessage;

use crate::state::AppState;

/// nginx closes idle websockets after 60 s; a ping well inside that keeps them open.
const PING_EVERY: Duration = Duration::from_secs(20);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message or frame a client may send; clients only send pongs and close frames.
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

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
    // dashboards cheap.
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
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
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
