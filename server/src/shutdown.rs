//! Graceful shutdown: stop accepting on SIGINT or SIGTERM and let in-flight requests end.

use std::future::Future;

/// Listens for SIGINT and SIGTERM from now on — the handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives after the port
/// is bound but before serving starts (a supervisor stopping a process it has just seen
/// listening) still shuts down gracefully instead of killing the process. Resolves on the
/// first signal. Needs the runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::warn!(%err, "Cannot listen for SIGINT or SIGTERM");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "Shutting down"),
                _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "Shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "Cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "Ctrl-C", "Shutting down");
    }
}
