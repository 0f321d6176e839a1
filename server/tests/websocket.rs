//! `/ws/live` on a real listener (upgrades need a real connection): the concurrent-socket
//! cap answers 503 with a reason and frees its slot when a socket closes, and a client
//! message over the size cap closes that socket with 1009 (message too big).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use server::config::{Cli, Settings};
use server::state::AppState;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode, Message};

async fn serve(cli: Cli) -> SocketAddr {
    let site = std::env::temp_dir().join(format!("perfpilot-ws-{}", std::process::id()));
    let settings = Settings::resolve(&Cli {
        site_root: Some(site),
        ephemeral: true,
        ..cli
    })
    .unwrap();
    let monitor = server::state::start(&settings).unwrap();
    let router = server::http::router::app(AppState::new(settings, monitor));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn first_text(socket: &mut Socket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no overview frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_over_the_limit_get_503_until_one_closes() {
    let addr = serve(Cli {
        max_websockets: Some(2),
        ..Cli::default()
    })
    .await;
    let url = format!("ws://{addr}/ws/live");
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert!(first_text(&mut a)
        .await
        .starts_with("{\"type\":\"overview\""));
    assert!(first_text(&mut b)
        .await
        .starts_with("{\"type\":\"overview\""));

    match tokio_tungstenite::connect_async(&url).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "5");
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert_eq!(
                body,
                "websocket: this perfpilot already serves 2 live connections (--max-websockets); try again shortly\n"
            );
        }
        other => panic!("a third socket is refused with 503, got {other:?}"),
    }

    // Closing one frees its slot.
    a.close(None).await.unwrap();
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => break socket,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(err) => panic!("the freed slot is reused: {err}"),
        }
    };
    assert!(first_text(&mut c)
        .await
        .starts_with("{\"type\":\"overview\""));
}

/// Reads past ticks and pings to the close frame; `None` if the stream ends (or fails)
/// without one.
async fn close_frame(socket: &mut Socket) -> Option<tungstenite::protocol::CloseFrame> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    })
    .await
    .expect("the socket closes within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_message_over_the_cap_gets_a_1009_close_handshake() {
    let addr = serve(Cli::default()).await;
    let url = format!("ws://{addr}/ws/live");
    // A message at the cap is fine: the socket goes on with ticks.
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    first_text(&mut socket).await;
    let at_cap = "x".repeat(server::http::live::MAX_CLIENT_MESSAGE);
    socket.send(Message::text(at_cap)).await.unwrap();
    socket
        .send(Message::Ping(Default::default()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Pong(_))) => return true,
                Some(Ok(Message::Close(frame))) => panic!("closed at the cap: {frame:?}"),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return false,
            }
        }
    })
    .await;
    assert_eq!(pong, Ok(true), "a message at the cap keeps the socket open");

    // One byte more: a close frame with 1009 (message too big), not a reset.
    let big = "x".repeat(server::http::live::MAX_CLIENT_MESSAGE + 1);
    socket.send(Message::text(big)).await.unwrap();
    let frame = close_frame(&mut socket)
        .await
        .expect("a close frame, not a reset or a silent end");
    assert_eq!(frame.code, CloseCode::Size);
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(frame.reason.as_str(), "message too big");
    // The closing handshake completes: tungstenite answers the close frame and the stream
    // ends cleanly (an error here would be the reset this replaces).
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(_)) => continue,
                other => return other.map(|r| r.map(|_| ())),
            }
        }
    })
    .await
    .expect("the socket ends within 10 s");
    assert!(end.is_none(), "the socket ends cleanly: {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_frame_over_the_read_limit_still_gets_a_1009_close_frame() {
    let addr = serve(Cli::default()).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/live"))
        .await
        .unwrap();
    first_text(&mut socket).await;
    // Refused from its header, unread: the server closes with 1009 and drops the socket.
    let huge = "x".repeat(server::http::live::READ_LIMIT + 1);
    socket.send(Message::text(huge)).await.unwrap();
    let frame = close_frame(&mut socket).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    assert_eq!(frame.reason.as_str(), "message too big");
}
