//! `perfpilot`: parse the configuration, bind, serve until SIGINT/SIGTERM.

// Leptos view types nest deeply; their layout exceeds the default query depth.
#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use server::config::{Cli, Settings};
use server::state::AppState;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Rendering a page walks the whole Leptos view tree on the worker's stack; a debug
    // build's frames are several times a release build's and outgrew tokio's 2 MiB with
    // the resource page. 8 MiB (virtual, touched only as used) leaves room for both.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .expect("the tokio runtime starts")
        .block_on(run())
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")),
        )
        // Logs are diagnostics, not output: stdout stays free for `--check-config`.
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!("configuration is valid: {settings:#?}");
        return ExitCode::SUCCESS;
    }
    if let Some(server::config::Command::History { what }) = &cli.command {
        return match what {
            server::config::HistoryCommand::Stats => history_stats(&settings),
        };
    }

    let listen = settings.listen;
    let metrics_listen = settings.metrics_listen;
    let monitor = match server::state::start(&settings) {
        Ok(started) => started,
        Err(err) => {
            eprintln!("error: cannot start: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // Reports read the monitor; the monitor knows nothing of them.
    if let Some(schedule) = settings.alerts.report.clone() {
        tokio::spawn(server::report::run_schedule(monitor.clone(), schedule));
    }
    log_durable_state(&settings, &monitor);
    monitor
        .persist
        .keep_audit_for(settings.audit_retention_days);
    // A replica applies the file's sources when it takes the lease (a follower takes no
    // edits); a single perfpilot now.
    let applied = if settings.database.is_some() {
        Ok(())
    } else {
        monitor.apply_configured(&settings.configured).await
    };
    if let Err(err) = applied {
        eprintln!("error: cannot apply the configuration file: {err:#}");
        return ExitCode::FAILURE;
    }
    let lease = keep_lease(&settings, &monitor);
    let settings_replicated = settings.database.is_some();
    let state = AppState::new(settings, monitor.clone());
    tracing::info!("{}", state.auth.describe());
    if let Err(err) = load_tokens(&state, settings_replicated).await {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    if let Some(problem) = &state.site.problem {
        tracing::warn!(%problem, "Serving pages without interactivity");
    }

    // Before the ports are bound: from the moment a port answers, a SIGTERM shuts down
    // gracefully.
    let shutdown = server::shutdown::signal();
    let metrics_shutdown = server::shutdown::signal();
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "error: cannot listen on {listen}: {}",
                describe_bind_error(&err)
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(url = %format!("http://{listen}/"), "perfpilot is listening");

    if let Some(addr) = metrics_listen {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!(
                    "error: cannot listen on {addr} (metrics): {}",
                    describe_bind_error(&err)
                );
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(url = %format!("http://{addr}/metrics"), "Prometheus metrics are served");
        let router = server::http::metrics::Exposition::new(state.monitor.clone()).router();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(metrics_shutdown);
            if let Err(err) = serve.await {
                tracing::error!(%err, "Metrics listener failed");
            }
        });
    }

    let router = server::http::router::app(state);
    // The peer address feeds the per-client rate limit of `POST /api/push`.
    // hyper's own refusals (a URL over 64 KiB) get the JSON body every refusal has. The
    // (empty) tap is what lets axum hand a wrapped listener's peer address to handlers.
    use axum::serve::ListenerExt;
    let serve = axum::serve(
        server::http::refusal::JsonRefusalListener(listener).tap_io(|_| {}),
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown);
    let served = serve.await;
    if let Some(lease) = lease {
        // It gives the lease up on the same signal; wait for that, not for its expiry.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), lease).await;
    }
    monitor.shutdown().await;
    monitor.persist.flush().await;
    match served {
        Ok(()) => {
            tracing::info!("Stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn log_durable_state(settings: &Settings, monitor: &server::state::Monitor) {
    match &settings.data_dir {
        Some(_) => tracing::info!(database = %monitor.persist.location(), "Durable state"),
        None => tracing::info!(
            "--ephemeral: configuration, snapshots, audit and tokens are kept in memory only; \
             no file is written and everything is lost when perfpilot stops"
        ),
    }
}

/// Loads the API tokens; a replica of a shared store keeps reading them back, since the
/// leader mints and revokes them.
async fn load_tokens(state: &AppState, replicated: bool) -> anyhow::Result<()> {
    state.tokens.load().await?;
    if replicated {
        tokio::spawn(
            state
                .tokens
                .clone()
                .keep_current(state.monitor.leadership.clone()),
        );
    }
    Ok(())
}

/// A replica of a shared store (`--database-url`) leads or follows from now on, and
/// gives the lease up on SIGINT/SIGTERM.
fn keep_lease(
    settings: &Settings,
    monitor: &server::state::Monitor,
) -> Option<tokio::task::JoinHandle<()>> {
    let database = settings.database.as_ref()?;
    let replica: std::sync::Arc<dyn server::state::lease::Replica> =
        std::sync::Arc::new(server::state::monitor::Replicated {
            monitor: monitor.clone(),
            configured: settings.configured.clone(),
        });
    tracing::info!(replica = %database.replica, "Replica of a shared store; taking or following the lease");
    Some(tokio::spawn(server::state::lease::keep(
        monitor.leadership.clone(),
        database.postgres.clone(),
        replica,
        server::shutdown::signal(),
    )))
}

fn describe_bind_error(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address already in use (is another perfpilot running?)".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".into()
        }
        std::io::ErrorKind::AddrNotAvailable => "address not available on this host".into(),
        _ => err.to_string(),
    }
}

/// `perfpilot history stats`: what the history file holds, per tier and per series.
fn history_stats(settings: &Settings) -> ExitCode {
    let Some(dir) = &settings.data_dir else {
        eprintln!("error: --ephemeral keeps no history on disk");
        return ExitCode::from(2);
    };
    let stats = match server::persist::history::stats(dir) {
        Ok(stats) => stats,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!(
        "{} — {:.1} MB on disk (cap {:.0} MB)",
        dir.join(server::persist::history::FILE).display(),
        mb(stats.file_bytes),
        mb(settings.history.max_bytes)
    );
    println!(
        "{:<8} {:>8} {:>12} {:>12} {:>10}",
        "tier", "chunks", "bytes", "samples", "B/sample"
    );
    for (tier, chunks, bytes, samples) in &stats.tiers {
        let per = if *samples > 0 {
            *bytes as f64 / *samples as f64
        } else {
            0.0
        };
        println!(
            "{:<8} {chunks:>8} {bytes:>12} {samples:>12} {per:>10.2}",
            tier.as_str()
        );
    }
    println!();
    println!("{:<48} {:>12} {:>12}", "series", "bytes", "samples");
    for (key, bytes, samples) in &stats.series {
        println!("{:<48} {bytes:>12} {samples:>12}", key.to_string());
    }
    ExitCode::SUCCESS
}
