//! The command line: `sessiond [serve]` and `sessiond user ...`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;
use crate::startup::Application;
use crate::store::{Store, StoreError};
use crate::users;

#[derive(Parser)]
#[command(name = "sessiond", version, about = "Server-side sessions in Redis")]
pub struct Cli {
    /// Configuration file; SESSIOND__SECTION__KEY environment variables override it.
    #[arg(long, default_value = "config.toml", global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Manage users in the configured store.
    #[command(subcommand)]
    User(UserCommand),
    /// Move user records from the key schema before Redis Cluster support (`{p}u:NAME`) to
    /// their tagged keys and index every user again. Idempotent; run it once after upgrading a
    /// standalone deployment (sessions issued before the upgrade are refused: users sign in
    /// again).
    Migrate,
    /// Compare sessions and JWTs on this machine; writes bench/report.md, report.json, SVGs.
    Bench {
        /// A smoke run in under a minute (few sessions and connections, one-second loads, one
        /// round, two trials per action, a small scale test).
        #[arg(long)]
        quick: bool,
        /// Live credentials the load spreads over [default: 10000; quick: 200].
        #[arg(long)]
        sessions: Option<usize>,
        /// Interleaved rounds of every mode [default: 3; quick: 1].
        #[arg(long)]
        rounds: Option<usize>,
        /// Revocation trials per mode and action [default: 200; quick: 2].
        #[arg(long)]
        trials: Option<usize>,
        /// Users of the scale test, ten live sessions each; 0 skips it [default: 100000;
        /// quick: 200].
        #[arg(long)]
        scale_users: Option<usize>,
        /// Use this Redis instead of starting a redis-server of our own.
        #[arg(long)]
        redis_url: Option<String>,
        /// The Redis Cluster (`redis+cluster://h:p,…`) of the "session (Redis Cluster)" mode,
        /// instead of the three masters the benchmark starts.
        #[arg(long)]
        store_url: Option<String>,
        /// Where the report goes.
        #[arg(long, default_value = "bench")]
        out: std::path::PathBuf,
        /// Measure nothing: write report.md and the charts again from this report.json.
        #[arg(long)]
        render: Option<std::path::PathBuf>,
    },
    /// Two instances and a redis-server of their own under a mixed load and a fault every few
    /// seconds; checks that no acknowledged write is lost; writes soak/report.md and report.json.
    Soak {
        /// How long the load runs, in seconds (CI runs 30).
        #[arg(long, default_value_t = 300)]
        duration: u64,
        /// Seconds between faults (Redis killed, Redis stalled, connections killed, a
        /// redeploy, in turn).
        #[arg(long, default_value_t = 20)]
        fault_every: u64,
        /// Redis's appendfsync: `always` (what deploy/redis.conf ships) or `everysec`.
        #[arg(long, value_enum, default_value = "always")]
        fsync: crate::soak::Fsync,
        /// Clients of the load.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Pause of each client between two steps, in milliseconds.
        #[arg(long, default_value_t = 5)]
        pace_ms: u64,
        /// Users the load signs in as.
        #[arg(long, default_value_t = 40)]
        users: usize,
        /// Where the report and the instances' logs go.
        #[arg(long, default_value = "soak")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Add {
        name: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from standard input (required: passwords never go on a command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Replace a user's roles; live sessions see the new roles on their next request.
    SetRoles { name: String, roles: Vec<String> },
    /// Disable a user and end all of their sessions.
    Disable { name: String },
    /// Let a disabled user log in again.
    Enable { name: String },
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The benchmark measures auth, not access logging, and refuses credentials by the
    // thousand on purpose: errors only, unless RUST_LOG says.
    if matches!(
        cli.command,
        Some(Command::Bench { .. } | Command::Soak { .. })
    ) && std::env::var_os("RUST_LOG").is_none()
    {
        crate::telemetry::init_with_default("error");
    } else {
        crate::telemetry::init();
    }
    let settings = match Settings::load(&cli.config) {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match Application::build(settings).await {
            Ok(app) => match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            },
            Err(e) => fail(&e),
        },
        Command::Bench {
            render: Some(json),
            out,
            ..
        } => match crate::bench::Report::rerender(&json, &out) {
            Ok(report) => {
                println!("{}", report.targets_table());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Bench {
            quick,
            redis_url,
            store_url,
            out,
            render: None,
            sessions,
            rounds,
            trials,
            scale_users,
        } => {
            let options = crate::bench::BenchOptions {
                quick,
                redis_url,
                store_url,
                out,
                sessions,
                rounds,
                trials,
                scale_users,
            };
            match crate::bench::run(options).await {
                Ok(report) => {
                    println!("{}", report.targets_table());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Soak {
            duration,
            fault_every,
            fsync,
            concurrency,
            pace_ms,
            users,
            out,
        } => {
            let binary = match std::env::current_exe() {
                Ok(binary) => binary,
                Err(e) => return fail(&e),
            };
            let options = crate::soak::SoakOptions {
                duration: Duration::from_secs(duration),
                fault_every: Duration::from_secs(fault_every.max(1)),
                fsync,
                concurrency: concurrency.max(1),
                pace: Duration::from_millis(pace_ms),
                users: users.max(1),
                out,
                binary,
            };
            match crate::soak::run(options).await {
                Ok(report) => {
                    println!("{}", report.markdown());
                    let broken = report.broken_promises();
                    if broken.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("broken: {}", broken.join("; "));
                        ExitCode::FAILURE
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Migrate => match migrate(&settings).await {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::User(command) => match user_command(&settings, command).await {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.as_ref()),
        },
    }
}

async fn migrate(settings: &Settings) -> Result<String, StoreError> {
    let mut settings = settings.clone();
    settings.store.near_cache = false;
    let store = Store::open(
        &settings,
        Clock::system(),
        std::sync::Arc::new(crate::metrics::Metrics::default()),
    )?;
    if store.is_memory() {
        return Err(StoreError::MemoryOutsideServer);
    }
    let done = store.migrate().await?;
    let mut message = format!(
        "moved {} user record(s) to tagged keys; indexed {} user(s)",
        done.moved, done.indexed
    );
    if !done.collisions.is_empty() {
        message.push_str(&format!(
            "\nleft at their old keys (their tag is taken by another name; rename them): {}",
            done.collisions.join(", ")
        ));
    }
    Ok(message)
}

async fn user_command(
    settings: &Settings,
    command: UserCommand,
) -> Result<String, Box<dyn std::error::Error>> {
    let clock = Clock::system();
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    // One command serves no sessions: no near-cache (its writes are still fenced, for the
    // servers' caches).
    let mut settings = settings.clone();
    settings.store.near_cache = false;
    let store = Store::open(&settings, clock.clone(), metrics.clone())?;
    if store.is_memory() {
        return Err(Box::new(StoreError::MemoryOutsideServer));
    }
    // The command line is the operator's break-glass path: it is audited as "cli", and it may
    // remove the last admin (the dashboard and the API may not).
    let operator = users::Operator {
        store: &store,
        clock: &clock,
        metrics: &metrics,
        name: "cli",
        ip: "local",
        known_roles: &settings.auth.roles,
    };
    Ok(match command {
        UserCommand::Add {
            name,
            roles,
            password_stdin,
        } => {
            if !password_stdin {
                return Err("pass --password-stdin and type the password on standard input".into());
            }
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let user = operator.create_user(&name, password, &roles).await?;
            format!(
                "created user {} with roles [{}]",
                user.name,
                user.roles.join(", ")
            )
        }
        UserCommand::SetRoles { name, roles } => {
            operator.set_roles(&name, &roles, false).await?;
            format!("roles of {name} are now [{}]", roles.join(", "))
        }
        UserCommand::Disable { name } => {
            let ended = operator.set_disabled(&name, true, false).await?;
            format!("disabled {name}; ended {ended} live session(s)")
        }
        UserCommand::Enable { name } => {
            operator.set_disabled(&name, false, false).await?;
            format!("enabled {name}")
        }
    })
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::FAILURE
}
