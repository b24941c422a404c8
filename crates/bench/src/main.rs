//! `axiquota-bench`: measures a poll of a fleet of fake Axigen servers, the
//! snapshot write path and the API, and prints the figures as Markdown.
//!
//! Run it through `scripts/bench`, which builds the release binaries and
//! provides a PostgreSQL server. All traffic stays on 127.0.0.0/8.

mod api;
mod db;
mod fake;
mod poll;
mod process;
mod write;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axiquota_core::Vault;
use axiquota_core::axigen::collector::ACCOUNT_CHUNK;
use clap::{Parser, Subcommand};

use crate::fake::{Fleet, FleetShape, FleetSpec, FleetStats};
use crate::poll::Concurrency;
use crate::process::{ChildUsage, mb};

/// Benchmarks of axiquota against fake Axigen servers on loopback.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the benchmarks that --parts names (all by default) and print the
    /// figures as Markdown on stdout
    Run(RunArgs),
    /// Run a fleet of fake servers on 127.0.0.2 and up; prints their
    /// addresses as JSON, then their counters when stdin closes
    FakeServers(FleetSpec),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// PostgreSQL server on which a fresh database is created and dropped;
    /// the role needs CREATEDB
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// Directory with the `poller` and `api` binaries; defaults to the
    /// directory of this executable
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// Directory for the logs of the child processes; defaults to a new
    /// temporary directory
    #[arg(long)]
    log_dir: Option<PathBuf>,

    #[command(flatten)]
    fleet: FleetShape,

    /// Servers polled at the same time (the poller's --max-servers; the
    /// default is the poller's)
    #[arg(long, default_value_t = 50)]
    max_servers: usize,

    /// CLI sessions per server (the poller's --sessions-per-server; the
    /// default is the poller's)
    #[arg(long, default_value_t = 4)]
    sessions_per_server: usize,

    /// Pause per CLI reply, in milliseconds, in the polls with added latency
    /// (the poll and concurrency benchmarks)
    #[arg(long, default_value_t = 1)]
    slow_latency_ms: u64,

    /// Lookups sent one after the other for the latency figures
    #[arg(long, default_value_t = 2000)]
    lookups: usize,

    /// Connections of the load generator
    #[arg(long, default_value_t = 8)]
    connections: usize,

    /// Seconds the load generator runs
    #[arg(long, default_value_t = 10)]
    load_seconds: u64,

    /// Timed rounds of the write-path benchmark (the median is reported)
    #[arg(long, default_value_t = 3)]
    write_rounds: usize,

    /// Values of --max-servers for the concurrency benchmark, which polls
    /// the fleet with the slow-server pause once for each
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5,10,25,50",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    concurrency_max_servers: Vec<usize>,

    /// Benchmarks to run. The API benchmark reads the accounts that the
    /// poll or concurrency benchmark stored, so it runs only with one of them
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "poll,concurrency,api,write"
    )]
    parts: Vec<Part>,
}

/// One benchmark of a run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Poll,
    /// The slow-server poll at several values of --max-servers.
    Concurrency,
    Api,
    Write,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a default TLS provider; the load generator
    // speaks plain HTTP, but building a client still needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match &cli.command {
        Command::FakeServers(spec) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(spec.shape.fleet_threads))
            .enable_all()
            .build(),
        Command::Run(_) => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::FakeServers(spec) => runtime.block_on(fake::serve(spec)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a progress line on stderr, so stdout holds only the report.
fn progress(message: &str) {
    eprintln!("bench: {message}");
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn per_second(count: usize, duration: Duration) -> String {
    format!("{:.0}", count as f64 / duration.as_secs_f64())
}

/// Returns `count` and `noun`, with an `s` unless the count is one.
fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Formats a number of sessions in parallel: whole when it is whole.
fn format_sessions(parallel: f64) -> String {
    if parallel.fract() == 0.0 {
        format!("{parallel:.0}")
    } else {
        format!("{parallel:.2}")
    }
}

/// Returns how many of `sessions` sessions one server of `shape` keeps busy
/// on average: its accounts over the most that one session reads, when
/// each domain's chunks of [`ACCOUNT_CHUNK`] accounts go in turn to the
/// session with the least work.
fn busy_sessions(shape: &FleetShape, sessions: usize) -> f64 {
    let mut loads = vec![0_usize; sessions.max(1)];
    for _ in 0..shape.domains {
        let mut left = shape.accounts_per_domain;
        while left > 0 {
            let chunk = left.min(ACCOUNT_CHUNK);
            if let Some(least) = loads.iter_mut().min() {
                *least += chunk;
            }
            left -= chunk;
        }
    }
    let busiest = loads.into_iter().max().unwrap_or(0);
    if busiest == 0 {
        return 1.0;
    }
    (shape.domains * shape.accounts_per_domain) as f64 / busiest as f64
}

/// Returns the number of cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark executable has no directory")?
            .to_path_buf(),
    };
    let log_dir = match &args.log_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("axiquota-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("creating {} failed", log_dir.display()))?;
    progress(&format!(
        "logs of the child processes go to {}",
        log_dir.display()
    ));

    let database = db::BenchDatabase::create(&args.database_url).await?;
    progress(&format!("created database {}", database.name));
    let outcome = run_all(&args, &bin_dir, &log_dir, &database).await;
    if let Err(error) = database.drop_database().await {
        progress(&format!("{error:#}"));
    }
    outcome
}

async fn run_all(
    args: &RunArgs,
    bin_dir: &Path,
    log_dir: &Path,
    database: &db::BenchDatabase,
) -> anyhow::Result<()> {
    let pool = &database.pool;
    let key = Vault::generate_key();
    let vault = Vault::from_keys(&key)?;

    print_machine(pool, args).await?;
    let bench = PollBench {
        args,
        poller_bin: bin_dir.join("poller"),
        log_dir,
        database,
        key: &key,
        vault: &vault,
    };
    if args.parts.contains(&Part::Poll) {
        run_poll(&bench).await?;
    }
    if args.parts.contains(&Part::Concurrency) {
        run_concurrency(&bench).await?;
    }
    if args.parts.contains(&Part::Api) {
        run_api(args, bin_dir, log_dir, database, &key).await?;
    }
    if args.parts.contains(&Part::Write) {
        progress("write path: replace_snapshot against COPY");
        let snapshot = write::build_snapshot(100, args.fleet.accounts().div_ceil(100));
        let write_figures =
            write::measure(pool, &vault, &snapshot, args.write_rounds.max(1)).await?;
        print_write(&write_figures);
    }
    Ok(())
}

async fn run_poll(bench: &PollBench<'_>) -> anyhow::Result<()> {
    let PollBench {
        args,
        database,
        vault,
        ..
    } = *bench;
    let pool = &database.pool;
    let concurrency = Concurrency {
        max_servers: args.max_servers,
        sessions_per_server: args.sessions_per_server,
        send_ahead: false,
    };
    let accounts = args.fleet.accounts();

    // Poll without added latency: a first poll into empty tables, a second
    // one replacing every snapshot, then the split into its halves.
    let fast = FleetSpec {
        shape: args.fleet,
        latency_ms: 0,
        network_latency: false,
    };
    progress(&format!(
        "starting {} fake servers without added latency",
        fast.shape.servers
    ));
    let fleet = Fleet::start(fast).await?;
    db::register_fleet(pool, vault, &fleet.servers).await?;

    progress("poll 1: the poller into empty tables");
    let first = bench.run_poller(concurrency, None, "poll-1.log").await?;
    check_accounts(pool, accounts).await?;
    progress("poll 2: the poller replacing every snapshot");
    let second = bench.run_poller(concurrency, None, "poll-2.log").await?;
    check_accounts(pool, accounts).await?;
    progress("poll 3: collection and writes one after the other, in this process");
    let split = poll::split_poll(pool, vault, concurrency).await?;
    let fast_stats = fleet.stop().await?;

    // Polls with added latency, as the poller runs by default and with its
    // commands sent ahead: a pause per reply for the servers' time per
    // command, then as a network round trip, then one server alone.
    let processing = FleetSpec {
        shape: args.fleet,
        latency_ms: args.slow_latency_ms,
        network_latency: false,
    };
    let network = FleetSpec {
        network_latency: true,
        ..processing
    };
    let single_server = FleetSpec {
        shape: FleetShape {
            servers: 1,
            ..args.fleet
        },
        ..network
    };
    let ahead = Concurrency {
        send_ahead: true,
        ..concurrency
    };
    let mut slow = Vec::new();
    let mut one_server = Vec::new();
    let runs = [
        (processing, concurrency),
        (processing, ahead),
        (network, concurrency),
        (network, ahead),
        (single_server, concurrency),
        (single_server, ahead),
    ];
    for (number, (spec, concurrency)) in (4..).zip(runs) {
        let poll = bench
            .poll_fleet(spec, concurrency, &format!("poll-{number}.log"))
            .await?;
        progress(&format!("poll {number}: {}", poll.name()));
        if spec.shape.servers == 1 && args.fleet.servers > 1 {
            one_server.push(poll);
        } else {
            slow.push(poll);
        }
    }

    print_poll(
        args,
        &PollFigures {
            first,
            second,
            split,
            fast_stats,
            slow,
            one_server,
        },
    );
    Ok(())
}

/// Polls the fleet with the slow-server pause before every reply once for
/// each value of `--concurrency-max-servers`, to show how close a poll comes to
/// its round-trip bound as the sessions in parallel grow and the CPU
/// becomes the limit.
async fn run_concurrency(bench: &PollBench<'_>) -> anyhow::Result<()> {
    let args = bench.args;
    let spec = FleetSpec {
        shape: args.fleet,
        latency_ms: args.slow_latency_ms,
        network_latency: false,
    };
    let mut polls = Vec::new();
    for (number, &max_servers) in (1..).zip(&args.concurrency_max_servers) {
        let concurrency = Concurrency {
            max_servers,
            sessions_per_server: args.sessions_per_server,
            send_ahead: false,
        };
        let poll = bench
            .poll_fleet(spec, concurrency, &format!("concurrency-{number}.log"))
            .await?;
        progress(&format!(
            "concurrency {number}: {} sessions in parallel, {}",
            format_sessions(poll.parallel()),
            seconds(poll.usage.wall)
        ));
        polls.push(poll);
    }
    print_concurrency(args, &polls);
    Ok(())
}

/// Settings shared by every run of the poller in the benchmark.
struct PollBench<'a> {
    args: &'a RunArgs,
    poller_bin: PathBuf,
    log_dir: &'a Path,
    database: &'a db::BenchDatabase,
    key: &'a axiquota_core::Secret,
    vault: &'a Vault,
}

impl PollBench<'_> {
    /// Runs the poller against every registered server, or only `only`,
    /// logging to `log_name` in the log directory.
    async fn run_poller(
        &self,
        concurrency: Concurrency,
        only: Option<&str>,
        log_name: &str,
    ) -> anyhow::Result<ChildUsage> {
        poll::run_poller(
            &self.poller_bin,
            &self.database.url,
            self.key.expose(),
            concurrency,
            only,
            &self.log_dir.join(log_name),
        )
        .await
    }

    /// Starts a fleet as `spec` sets, polls its servers, checks the stored
    /// accounts and stops the fleet. A fleet smaller than the registered
    /// one is polled by host name.
    async fn poll_fleet(
        &self,
        spec: FleetSpec,
        concurrency: Concurrency,
        log_name: &str,
    ) -> anyhow::Result<SlowPoll> {
        let pool = &self.database.pool;
        let fleet = Fleet::start(spec).await?;
        db::register_fleet(pool, self.vault, &fleet.servers).await?;
        let only =
            (spec.shape.servers < self.args.fleet.servers).then(|| fleet.servers[0].host.as_str());
        let usage = self.run_poller(concurrency, only, log_name).await?;
        check_accounts(pool, self.args.fleet.accounts()).await?;
        let stats = fleet.stop().await?;
        Ok(SlowPoll {
            spec,
            concurrency,
            usage,
            stats,
        })
    }
}

async fn run_api(
    args: &RunArgs,
    bin_dir: &Path,
    log_dir: &Path,
    database: &db::BenchDatabase,
    key: &axiquota_core::Secret,
) -> anyhow::Result<()> {
    let pool = &database.pool;
    if db::account_count(pool).await? == 0 {
        anyhow::bail!(
            "the API benchmark needs stored accounts: add poll or concurrency to --parts, for example --parts poll,api"
        );
    }
    let api_bin = bin_dir.join("api");

    // The API over the stored snapshot. Autovacuum would get there on its
    // own; running it now keeps the figures independent of its timing.
    for table in ["accounts", "domains", "servers"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(pool)
            .await?;
    }
    progress("API: starting api --no-auth");
    let api_process = api::ApiProcess::start(
        &api_bin,
        &database.url,
        key.expose(),
        &log_dir.join("api.log"),
    )
    .await?;
    let api_figures = measure_api(args, pool, &api_process).await;
    api_process.stop().await;
    print_api(args, &api_figures?);
    Ok(())
}

async fn check_accounts(pool: &sqlx::PgPool, expected: usize) -> anyhow::Result<()> {
    let stored = db::account_count(pool).await?;
    if usize::try_from(stored).ok() != Some(expected) {
        anyhow::bail!("the poll stored {stored} accounts; expected {expected}");
    }
    Ok(())
}

async fn print_machine(pool: &sqlx::PgPool, args: &RunArgs) -> anyhow::Result<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .map_or("unknown".to_owned(), |line| {
            line.trim_start_matches("MemTotal:").trim().to_owned()
        });
    let cores = cores();
    let postgres: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };

    println!("## Machine\n");
    println!("| | |\n|---|---|");
    println!("| CPU | {cpu} |");
    println!("| cores (nproc) | {cores} |");
    println!("| memory | {memory} |");
    println!("| PostgreSQL | {postgres} |");
    println!("| build profile | {profile} |");
    println!(
        "| fleet | {} x {} x {} = {}, on {} |",
        counted(args.fleet.servers, "fake server"),
        counted(args.fleet.domains, "domain"),
        counted(args.fleet.accounts_per_domain, "account"),
        counted(args.fleet.accounts(), "account"),
        counted(usize::from(args.fleet.fleet_threads), "worker thread")
    );
    println!(
        "| poller concurrency | --max-servers {} --sessions-per-server {} (the concurrency benchmark sets --max-servers per row) |",
        args.max_servers, args.sessions_per_server
    );
    println!();
    Ok(())
}

struct PollFigures {
    first: ChildUsage,
    second: ChildUsage,
    split: poll::Split,
    fast_stats: FleetStats,
    /// The polls of every server with added latency: per reply, then as a
    /// network round trip, each by default and with `--send-ahead`.
    slow: Vec<SlowPoll>,
    /// One server whose latency is a network round trip, polled the same
    /// two ways.
    one_server: Vec<SlowPoll>,
}

/// One poll of fake servers with added latency.
struct SlowPoll {
    /// The fleet polled.
    spec: FleetSpec,
    concurrency: Concurrency,
    usage: ChildUsage,
    stats: FleetStats,
}

impl SlowPoll {
    fn name(&self) -> String {
        let latency = if self.spec.network_latency {
            format!("{} ms network round trip", self.spec.latency_ms)
        } else {
            format!("{} ms per CLI reply", self.spec.latency_ms)
        };
        let sending = if self.concurrency.send_ahead {
            ", --send-ahead"
        } else {
            ""
        };
        format!("{latency}, replacing{sending}")
    }

    /// Returns the round trips of the poll: every reply, except that with a
    /// network round trip, commands sent together share one.
    fn round_trips(&self) -> u64 {
        let shared = if self.spec.network_latency {
            self.stats.commands_sent_ahead
        } else {
            0
        };
        self.stats.commands_total().saturating_sub(shared)
    }

    /// Returns the number of CLI sessions that are busy in parallel on
    /// average. A server keeps its sessions busy only as far as its chunks
    /// of accounts spread over them.
    fn parallel(&self) -> f64 {
        let shape = &self.spec.shape;
        let servers = self.concurrency.max_servers.min(shape.servers);
        servers as f64 * busy_sessions(shape, self.concurrency.sessions_per_server)
    }

    /// Returns the round-trip bound: every round trip's pause, spread over
    /// the sessions that run in parallel.
    fn bound(&self) -> Duration {
        Duration::from_secs_f64(
            self.round_trips() as f64 * self.spec.latency_ms as f64
                / 1000.0
                / self.parallel().max(1.0),
        )
    }

    /// Returns the busy CPU time of the whole machine spread over its
    /// cores: a second lower bound, since the poll cannot end sooner.
    fn cpu_bound(&self, cores: usize) -> Duration {
        self.usage.machine_busy / u32::try_from(cores).unwrap_or(1)
    }
}

fn print_poll(args: &RunArgs, figures: &PollFigures) {
    let accounts = args.fleet.accounts();
    println!("## Poll\n");
    println!(
        "The real `poller` binary, fake servers in a separate process. Wall time from \
         start to exit (reading the server list, collecting, writing, recording the run); \
         peak memory is the poller's VmHWM.\n"
    );
    println!(
        "| run | wall time | accounts/s | poller CPU | machine CPU busy (all processes) | poller peak memory |"
    );
    println!("|---|---|---|---|---|---|");
    let cores = cores();
    let row = |name: &str, usage: &ChildUsage| {
        println!(
            "| {name} | {} | {} | {} | {} of {} |  {} |",
            seconds(usage.wall),
            per_second(accounts, usage.wall),
            seconds(usage.cpu),
            seconds(usage.machine_busy),
            seconds(usage.wall * u32::try_from(cores).unwrap_or(1)),
            mb(usage.peak_rss_kb)
        );
    };
    row("no added latency, empty tables", &figures.first);
    row(
        "no added latency, replacing every snapshot",
        &figures.second,
    );
    for slow in &figures.slow {
        row(&slow.name(), &slow.usage);
    }
    println!();

    let split = &figures.split;
    println!(
        "Split of a poll without added latency into its halves, run one after the other in \
         the benchmark process with the same concurrency: every server collected \
         (nothing written), then every snapshot replaced (one transaction per server).\n"
    );
    println!("| half | wall time | accounts/s |\n|---|---|---|");
    println!(
        "| collection | {} | {} |",
        seconds(split.collection),
        per_second(split.accounts, split.collection)
    );
    println!(
        "| database writes | {} | {} |",
        seconds(split.writes),
        per_second(split.accounts, split.writes)
    );
    println!();

    for slow in &figures.slow {
        print_slow_poll(args, slow, cores);
    }
    print_network_polls(args, &figures.one_server);
    let fast = &figures.fast_stats;
    println!(
        "Without added latency, three polls sent {} commands ({:.2} per account and poll); \
         the fake servers used {:.1} s of CPU for them.\n",
        fast.commands_total(),
        fast.commands_total() as f64 / (3 * accounts) as f64,
        fast.cpu_seconds
    );

    println!("| target | figure | result |\n|---|---|---|");
    println!(
        "| poll of {accounts} accounts in under 15 s, no added latency | {} | {} |",
        seconds(figures.second.wall),
        verdict(figures.second.wall < Duration::from_secs(15))
    );
    for slow in &figures.slow {
        let bound = slow.bound();
        let ratio = slow.usage.wall.as_secs_f64() / bound.as_secs_f64();
        println!(
            "| {}: close to the round-trip bound {} | {} ({ratio:.2}x) | {} |",
            slow.name(),
            seconds(bound),
            seconds(slow.usage.wall),
            verdict(ratio < 1.5)
        );
    }
    let peak = figures
        .slow
        .iter()
        .chain(&figures.one_server)
        .map(|slow| slow.usage.peak_rss_kb)
        .fold(
            figures.first.peak_rss_kb.max(figures.second.peak_rss_kb),
            u64::max,
        );
    println!(
        "| poller peak memory under 300 MB | {} | {} |",
        mb(peak),
        verdict(peak < 300 * 1024)
    );
    println!();
}

/// Prints the bounds of one slow poll and how far the poll stayed from them.
fn print_slow_poll(args: &RunArgs, poll: &SlowPoll, cores: usize) {
    let accounts = args.fleet.accounts();
    let replies = poll.stats.commands_total();
    let round_trips = poll.round_trips();
    let per_account = round_trips as f64 / accounts as f64;
    let parallel = poll.parallel();
    let bound = poll.bound();
    println!("### {}\n", poll.name());
    println!(
        "Round-trip bound: {round_trips} round trips for {replies} CLI replies \
         ({per_account:.2} per account) x {} ms / {} sessions in parallel = {}. \
         Measured {}, {:.2}x the bound. Commands by kind: {:?}. CLI connections: {}; most \
         sessions open on one server at once: {}; WebAdmin requests: {}.\n",
        args.slow_latency_ms,
        format_sessions(parallel),
        seconds(bound),
        seconds(poll.usage.wall),
        poll.usage.wall.as_secs_f64() / bound.as_secs_f64(),
        poll.stats.commands,
        poll.stats.cli_connections,
        poll.stats.peak_sessions_per_server,
        poll.stats.webadmin_requests
    );
    let mean_reply = poll.stats.mean_delayed_reply();
    if let (Some(mean), true) = (mean_reply, poll.spec.network_latency) {
        println!(
            "The fake servers' replies left {:.3} ms after their command arrived, on \
             average (round trip: {} ms).\n",
            mean.as_secs_f64() * 1e3,
            args.slow_latency_ms
        );
    } else if let Some(mean) = mean_reply {
        println!(
            "The fake servers' replies took {:.3} ms on average from the start of the \
             pause to the end of the write (asked: {} ms), so {:.2}x the bound is the fake \
             servers' own delay and the rest, {:.0} µs per reply, is the poller, loopback \
             TCP and the two processes waiting for a core.\n",
            mean.as_secs_f64() * 1e3,
            args.slow_latency_ms,
            mean.as_secs_f64() * 1e3 / args.slow_latency_ms as f64,
            ((poll.usage.wall.as_secs_f64()
                - bound.as_secs_f64() * mean.as_secs_f64() * 1e3 / args.slow_latency_ms as f64)
                * parallel
                / replies.max(1) as f64
                * 1e6)
                .max(0.0)
        );
    }
    // What the bound's reply rate would cost in CPU, from what each side
    // spent per reply in this poll.
    let micros_per_reply = |cpu: f64| cpu * 1e6 / replies.max(1) as f64;
    let poller_us = micros_per_reply(poll.usage.cpu.as_secs_f64());
    let fleet_us = micros_per_reply(poll.stats.cpu_seconds);
    let bound_rate = replies as f64 / bound.as_secs_f64();
    println!(
        "CPU per reply: poller {poller_us:.1} µs, fake servers {fleet_us:.1} µs. \
         At the bound, {bound_rate:.0} replies per second would take {:.2} cores for these two \
         alone, of the machine's {}.\n",
        bound_rate * (poller_us + fleet_us) / 1e6,
        cores
    );
    let cpu_bound = poll.cpu_bound(cores);
    let larger_bound = bound.max(cpu_bound);
    println!(
        "CPU bound: the machine was busy for {} of CPU time, which {cores} \
         cores need at least {} for. Measured {}, {:.2}x the larger of the two bounds.\n",
        seconds(poll.usage.machine_busy),
        seconds(cpu_bound),
        seconds(poll.usage.wall),
        poll.usage.wall.as_secs_f64() / larger_bound.as_secs_f64()
    );
}

/// Prints the concurrency sweep: each poll against its round-trip bound and
/// the CPU bound of the machine.
fn print_concurrency(args: &RunArgs, polls: &[SlowPoll]) {
    let cores = cores();
    println!(
        "## Concurrency\n\nThe fleet with {} ms before every CLI reply, polled with \
         `--sessions-per-server {}` and each `--max-servers` below. The round-trip bound \
         is replies x {} ms / sessions in parallel; the CPU bound is the machine's busy \
         CPU time (every process) over its {cores} cores. A poll cannot beat the larger \
         of the two. Sessions in parallel count the sessions that each server's chunks of \
         {ACCOUNT_CHUNK} accounts keep busy on average.\n",
        args.slow_latency_ms, args.sessions_per_server, args.slow_latency_ms
    );
    println!(
        "| --max-servers | sessions in parallel | wall time | round-trip bound | ratio | \
         CPU bound | ratio to the larger bound | fake servers' mean reply |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for poll in polls {
        let wall = poll.usage.wall.as_secs_f64();
        let bound = poll.bound();
        let cpu_bound = poll.cpu_bound(cores);
        let mean_reply = poll
            .stats
            .mean_delayed_reply()
            .map_or_else(|| "-".to_owned(), millis);
        println!(
            "| {} | {} | {} | {} | {:.2}x | {} | {:.2}x | {mean_reply} |",
            poll.concurrency.max_servers,
            format_sessions(poll.parallel()),
            seconds(poll.usage.wall),
            seconds(bound),
            wall / bound.as_secs_f64(),
            seconds(cpu_bound),
            wall / bound.max(cpu_bound).as_secs_f64(),
        );
    }
    println!();
}

/// Prints the polls of one server whose latency is a network round trip.
/// Commands sent together share a round trip, so the bound counts round
/// trips rather than replies.
fn print_network_polls(args: &RunArgs, polls: &[SlowPoll]) {
    let accounts = args.fleet.domains * args.fleet.accounts_per_domain;
    println!(
        "### One server, {} ms network round trip\n\nOne fake server ({accounts} accounts) \
         whose pause before a reply counts from the arrival of its command, as a network \
         round trip does, so commands sent together are answered together. The poller runs \
         with `--server` and {} sessions; wall time includes its start, login and writes.\n",
        args.slow_latency_ms, args.sessions_per_server
    );
    println!(
        "| commands | wall time | round trips per account | round-trip bound | ratio |\n|---|---|---|---|---|"
    );
    for poll in polls {
        let round_trips = poll.round_trips();
        let bound = poll.bound();
        let commands = if poll.concurrency.send_ahead {
            "sent ahead (`--send-ahead`)"
        } else {
            "one at a time (default)"
        };
        println!(
            "| {commands} | {} | {:.2} | {} | {:.2}x |",
            seconds(poll.usage.wall),
            round_trips as f64 / accounts as f64,
            seconds(bound),
            poll.usage.wall.as_secs_f64() / bound.as_secs_f64()
        );
    }
    println!();
}

struct ApiFigures {
    sequential: api::Latency,
    load: api::Load,
    hwm_before_reports: u64,
    report: api::Download,
    hwm_after_json: u64,
    csv: api::Download,
    hwm_after_csv: u64,
}

async fn measure_api(
    args: &RunArgs,
    pool: &sqlx::PgPool,
    api_process: &api::ApiProcess,
) -> anyhow::Result<ApiFigures> {
    let addresses = api::sample_addresses(pool, 5000).await?;
    let base = &api_process.base;
    progress("API: sequential lookups");
    let sequential = api::sequential_lookups(base, &addresses, args.lookups).await?;
    progress("API: lookups under load");
    let load = api::concurrent_lookups(
        base,
        &addresses,
        args.connections.max(1),
        Duration::from_secs(args.load_seconds),
    )
    .await?;
    let (hwm_before_reports, _) = api_process.memory_kb()?;
    progress("API: full report as JSON");
    let report = api::download(base, "/report").await?;
    let (hwm_after_json, _) = api_process.memory_kb()?;
    progress("API: full report as CSV");
    let csv = api::download(base, "/report?format=csv").await?;
    let (hwm_after_csv, _) = api_process.memory_kb()?;
    Ok(ApiFigures {
        sequential,
        load,
        hwm_before_reports,
        report,
        hwm_after_json,
        csv,
        hwm_after_csv,
    })
}

fn print_api(args: &RunArgs, figures: &ApiFigures) {
    let accounts = args.fleet.accounts();
    println!("## API\n");
    println!(
        "The real `api --no-auth` binary over the {accounts} stored accounts, after \
         `VACUUM ANALYZE`. The load generator is part of the benchmark process \
         (reqwest, kept-alive connections on 127.0.0.1) and shares the {} cores with the \
         API and PostgreSQL. Latency is from sending the request to reading the whole body.\n",
        cores()
    );
    let sequential = &figures.sequential;
    let load = &figures.load;
    println!("| `GET /report?account=` | requests | median | p99 | max | requests/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| one connection, one request at a time | {} | {} | {} | {} | {} |",
        sequential.requests,
        millis(sequential.median),
        millis(sequential.p99),
        millis(sequential.max),
        per_second(sequential.requests, sequential.total)
    );
    println!(
        "| {} connections for {} | {} | {} | {} | {} | {:.0} |",
        load.connections,
        seconds(load.duration),
        load.latency.requests,
        millis(load.latency.median),
        millis(load.latency.p99),
        millis(load.latency.max),
        load.requests_per_second()
    );
    println!();

    println!("| full report | time to first byte | total time | size | API VmHWM after |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, download: &api::Download, hwm: u64| {
        println!(
            "| {name} | {} | {} | {:.1} MB | {} |",
            millis(download.time_to_first_byte),
            seconds(download.total),
            download.bytes as f64 / 1_048_576.0,
            mb(hwm)
        );
    };
    row(
        "`GET /report` (JSON)",
        &figures.report,
        figures.hwm_after_json,
    );
    row(
        "`GET /report?format=csv`",
        &figures.csv,
        figures.hwm_after_csv,
    );
    println!(
        "\nAPI VmHWM after the lookups and before the full reports: {}.\n",
        mb(figures.hwm_before_reports)
    );

    println!("| target | figure | result |\n|---|---|---|");
    println!(
        "| single-account lookup under 5 ms at p99 (one at a time) | {} | {} |",
        millis(sequential.p99),
        verdict(sequential.p99 < Duration::from_millis(5))
    );
    println!(
        "| full report streamed with the API under 100 MB | {} | {} |",
        mb(figures.hwm_after_csv),
        verdict(figures.hwm_after_csv < 100 * 1024)
    );
    println!();
}

fn print_write(figures: &write::WriteFigures) {
    println!("## Write path\n");
    println!(
        "One server's snapshot of {} accounts in 100 domains, replacing the previous \
         snapshot of the same size, on one connection; median of {} rounds. The limit is \
         PostgreSQL's `COPY accounts FROM STDIN` of the same rows into the same table \
         (same indexes, domain ids already known), after a `DELETE` of the old rows in \
         the same transaction.\n",
        figures.accounts, figures.rounds
    );
    println!("| step | time | rows/s |\n|---|---|---|");
    println!(
        "| `replace_snapshot` + commit (deletes, domains, accounts) | {} | {} |",
        millis(figures.replace),
        per_second(figures.accounts, figures.replace)
    );
    println!(
        "| `DELETE` of the old accounts | {} | {} |",
        millis(figures.delete),
        per_second(figures.accounts, figures.delete)
    );
    println!(
        "| `COPY` of the new accounts + commit (the limit) | {} | {} |",
        millis(figures.copy),
        per_second(figures.accounts, figures.copy)
    );
    let ratio = figures.replace.as_secs_f64() / figures.copy.as_secs_f64();
    let ratio_with_delete =
        figures.replace.as_secs_f64() / (figures.copy + figures.delete).as_secs_f64();
    println!();
    println!(
        "`replace_snapshot` takes {ratio:.2}x the time of `COPY` alone and \
         {ratio_with_delete:.2}x that of `DELETE` + `COPY`.\n"
    );
    println!("| target | figure | result |\n|---|---|---|");
    println!(
        "| write path within 2x of COPY | {ratio:.2}x | {} |",
        verdict(ratio <= 2.0)
    );
    println!();
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    /// Builds a poll of `servers` fake servers with 1 ms per reply that replied to
    /// `commands` commands, `sent_ahead` of them sent ahead.
    fn slow_poll(
        servers: usize,
        network_latency: bool,
        max_servers: usize,
        commands: u64,
        sent_ahead: u64,
    ) -> SlowPoll {
        SlowPoll {
            spec: FleetSpec {
                shape: FleetShape {
                    servers,
                    domains: 4,
                    accounts_per_domain: 500,
                    fleet_threads: 1,
                },
                latency_ms: 1,
                network_latency,
            },
            concurrency: Concurrency {
                max_servers,
                sessions_per_server: 4,
                send_ahead: sent_ahead > 0,
            },
            usage: ChildUsage {
                status: ExitStatus::from_raw(0),
                wall: Duration::from_secs(10),
                peak_rss_kb: 0,
                cpu: Duration::ZERO,
                machine_busy: Duration::from_secs(12),
            },
            stats: FleetStats {
                commands: [("UPDATE".to_owned(), commands)].into(),
                commands_sent_ahead: sent_ahead,
                ..FleetStats::default()
            },
        }
    }

    #[test]
    fn parallel_sessions_capped_by_fleet() {
        assert_eq!(slow_poll(100, false, 50, 1, 0).parallel(), 200.0);
        assert_eq!(slow_poll(1, false, 50, 1, 0).parallel(), 4.0);
    }

    #[test]
    fn parallel_sessions_capped_by_chunks() {
        let mut poll = slow_poll(2, false, 2, 1, 0);
        poll.spec.shape.domains = 1;
        poll.spec.shape.accounts_per_domain = 100;
        assert_eq!(poll.parallel(), 2.0);

        // Chunks of 100 and 1: one session reads almost everything.
        poll.spec.shape.accounts_per_domain = 101;
        assert_eq!(poll.parallel(), 2.0 * 101.0 / 100.0);

        // Five chunks over four sessions: one session reads two.
        poll.spec.shape.accounts_per_domain = 500;
        assert_eq!(poll.parallel(), 2.0 * 2.5);
    }

    #[test]
    fn bound_spreads_replies_over_sessions() {
        let poll = slow_poll(100, false, 25, 1_000_000, 0);
        assert_eq!(poll.bound(), Duration::from_secs(10));
    }

    #[test]
    fn network_bound_shares_sent_ahead_round_trips() {
        let sent_ahead = slow_poll(1, true, 1, 10_000, 8_000);
        assert_eq!(sent_ahead.round_trips(), 2_000);
        assert_eq!(sent_ahead.bound(), Duration::from_millis(500));

        // With a pause per reply, commands sent ahead still wait one each.
        let per_reply = slow_poll(1, false, 1, 10_000, 8_000);
        assert_eq!(per_reply.round_trips(), 10_000);
    }

    #[test]
    fn cpu_bound_spreads_busy_time_over_cores() {
        let poll = slow_poll(100, false, 50, 1, 0);
        assert_eq!(poll.cpu_bound(2), Duration::from_secs(6));
        assert_eq!(poll.cpu_bound(1), Duration::from_secs(12));
    }
}
