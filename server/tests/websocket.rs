//! `/ws/live` on a real listener (upgrades need a real connection): the concurrent-socket
//! cap answers 503 with a reason and frees its slot when a socket closes, and a client
//! message over the size cap closes that socket.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use server::config::{Cli, Settings};
use server::state::AppState;
use tokio_tungstenite::tungstenite::{self, Message};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_message_over_the_cap_closes_the_socket() {
    let addr = serve(Cli::default()).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/live"))
        .await
        .unwrap();
    first_text(&mut socket).await;
    let big = "x".repeat(server::http::live::MAX_CLIENT_MESSAGE + 1);
    socket.send(Message::text(big)).await.unwrap();
    // The server stops serving it: the stream ends (a close frame or a reset) rather than
    // going on with ticks.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true), "the oversized message ends the socket");
}
