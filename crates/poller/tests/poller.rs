//! The poller against real PostgreSQL and the fake Axigen server over TCP:
//! the library's `poll_once` for the data paths, the binary for exit codes,
//! dry runs and signals.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use axigen_sim::{
    Behavior, GenerateSpec, MidReplyTrigger, ServerData, SimHandle, SimOptions, SimServer,
};
use axiquota_core::axigen::collector::CollectOptions;
use axiquota_core::model::NewServer;
use axiquota_core::store::servers;
use axiquota_core::{Secret, Vault};
use poller::{PollSettings, RunError, RunReport, poll_once};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The `FROM` and `WHERE` clauses that select the advisory locks granted in
/// this test's database, which are the poll locks.
macro_rules! granted_poll_locks {
    () => {
        "FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    };
}

/// One account row as stored: domain, local part, quota, usage, status.
type StoredAccount = (String, String, Option<i64>, i64, String);

struct Fixture {
    pool: PgPool,
    key: Secret,
    vault: Vault,
}

impl Fixture {
    fn new(pool: PgPool) -> Self {
        let key = Vault::generate_key();
        let vault = Vault::from_keys(&key).unwrap();
        Self { pool, key, vault }
    }

    /// Registers a fake server under its loopback address, which is unique
    /// per fake server, and returns its id.
    async fn register(&self, sim: &SimHandle, password: &str) -> Uuid {
        let hostname = sim.cli_addr().ip().to_string();
        let server = NewServer {
            name: format!("fake {hostname}"),
            hostname,
            cli_port: sim.cli_addr().port(),
            webadmin_port: sim.webadmin_addr().port(),
            username: "admin".to_owned(),
            password: Secret::new(password),
            cli_tls: false,
            tls_verify: true,
            tls_fingerprints: Vec::new(),
            webadmin_enabled: false,
            webadmin_allow_http: false,
        };
        servers::insert(&self.pool, &self.vault, &server)
            .await
            .unwrap()
            .id
    }

    /// Starts and registers `count` fake servers on 127.0.0.`first_host` and
    /// up, each adding `latency_ms` to every reply, with two domains of five
    /// accounts.
    async fn start_slow_servers(
        &self,
        first_host: u8,
        count: u8,
        latency_ms: u64,
    ) -> (Vec<Uuid>, Vec<SimHandle>) {
        let servers: Vec<(u8, u64)> = (0..count)
            .map(|index| (first_host + index, latency_ms))
            .collect();
        self.start_servers_with_latency(&servers).await
    }

    /// Starts and registers one fake server per `(host, latency_ms)` on
    /// 127.0.0.`host`, adding `latency_ms` to every reply, with two domains
    /// of five accounts.
    async fn start_servers_with_latency(
        &self,
        servers: &[(u8, u64)],
    ) -> (Vec<Uuid>, Vec<SimHandle>) {
        let mut ids = Vec::new();
        let mut sims = Vec::new();
        for &(host, latency_ms) in servers {
            let sim = start(
                host,
                data(u64::from(host) - 1, 2, 5),
                Behavior {
                    reply_latency: Duration::from_millis(latency_ms),
                    ..Behavior::default()
                },
            )
            .await;
            ids.push(self.register(&sim, "secret").await);
            sims.push(sim);
        }
        (ids, sims)
    }

    /// Starts a poll of every registered server in a task of its own.
    fn spawn_poll(&self, settings: PollSettings) -> JoinHandle<Result<RunReport, RunError>> {
        let pool = self.pool.clone();
        let vault = self.vault.clone();
        tokio::spawn(
            async move { poll_once(&pool, &vault, &settings, &CancellationToken::new()).await },
        )
    }

    /// Checks that each server's stored accounts are the data its fake
    /// server serves.
    async fn assert_stored(&self, ids: &[Uuid], sims: &[SimHandle]) {
        for (id, sim) in ids.iter().zip(sims) {
            assert_eq!(
                self.stored_accounts(*id).await,
                expected_accounts(&sim.data())
            );
        }
    }

    async fn stored_accounts(&self, server_id: Uuid) -> BTreeSet<StoredAccount> {
        let rows: Vec<StoredAccount> = sqlx::query_as(
            "SELECT d.name, a.local_part, a.quota_kb, a.used_kb, d.status \
             FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.server_id = $1",
        )
        .bind(server_id)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        rows.into_iter().collect()
    }

    async fn stored_domains(&self, server_id: Uuid) -> BTreeSet<(String, String)> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, status FROM domains WHERE server_id = $1")
                .bind(server_id)
                .fetch_all(&self.pool)
                .await
                .unwrap();
        rows.into_iter().collect()
    }

    fn database_url(&self) -> String {
        let base = std::env::var("DATABASE_URL").unwrap();
        let database = self
            .pool
            .connect_options()
            .get_database()
            .unwrap()
            .to_owned();
        let server = base
            .split('?')
            .next()
            .unwrap()
            .rsplit_once('/')
            .unwrap()
            .0
            .to_owned();
        format!("{server}/{database}")
    }

    /// Builds a poller command. It is a tokio command so that waiting for
    /// it leaves the test's runtime free to run the fake servers.
    fn poller_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_poller"));
        command
            .args(args)
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .env("DATABASE_URL", self.database_url())
            .env("FERNET_KEY", self.key.expose())
            .env("POLL_PROGRESS_INTERVAL", "0")
            .env_remove("POLL_SERVERS")
            .env_remove("POLL_EVERY");
        command
    }
}

fn expected_accounts(data: &ServerData) -> BTreeSet<StoredAccount> {
    let mut expected = BTreeSet::new();
    for domain in &data.domains {
        let status = if domain.enabled {
            "enabled"
        } else {
            "disabled"
        };
        for account in &domain.accounts {
            let quota = account
                .quota_kb
                .filter(|quota| *quota > 0)
                .map(|quota| i64::try_from(quota).unwrap());
            expected.insert((
                domain.name.to_lowercase(),
                account.name.to_lowercase(),
                quota,
                i64::try_from(account.used_kb).unwrap(),
                status.to_owned(),
            ));
        }
    }
    expected
}

fn expected_domains(data: &ServerData) -> BTreeSet<(String, String)> {
    data.domains
        .iter()
        .map(|domain| {
            let status = if domain.enabled {
                "enabled"
            } else {
                "disabled"
            };
            (domain.name.to_lowercase(), status.to_owned())
        })
        .collect()
}

fn data(seed: u64, domains: usize, accounts_per_domain: usize) -> ServerData {
    ServerData::generate(&GenerateSpec {
        seed,
        domains,
        accounts_per_domain,
        ..GenerateSpec::default()
    })
}

fn settings() -> PollSettings {
    PollSettings {
        hostnames: Vec::new(),
        max_servers: 8,
        server_timeout: Duration::from_secs(30),
        dry_run: false,
        progress_interval: Duration::ZERO,
        collect: CollectOptions {
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(5),
            ..CollectOptions::default()
        },
    }
}

/// Starts a fake server on 127.0.0.`host`. Each fake server of a test gets
/// its own loopback address, because host names are unique in the store.
async fn start(host: u8, data: ServerData, behavior: Behavior) -> SimHandle {
    let address = SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0));
    SimServer::start_on(
        address,
        address,
        data,
        SimOptions {
            behavior,
            ..SimOptions::default()
        },
    )
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn poll_writes_exactly_served_data(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let first_data = data(1, 3, 25);
    let second_data = data(2, 2, 10);
    let first = start(11, first_data.clone(), Behavior::default()).await;
    let second = start(12, second_data.clone(), Behavior::default()).await;
    let first_id = fixture.register(&first, "secret").await;
    let second_id = fixture.register(&second, "secret").await;

    let report = poll_once(
        &fixture.pool,
        &fixture.vault,
        &settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.counts.ok, 2, "{:?}", report.servers);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        fixture.stored_accounts(first_id).await,
        expected_accounts(&first_data)
    );
    assert_eq!(
        fixture.stored_domains(first_id).await,
        expected_domains(&first_data)
    );
    assert_eq!(
        fixture.stored_accounts(second_id).await,
        expected_accounts(&second_data)
    );

    // The first server's data changes; a second poll replaces its rows and
    // rewrites the second server's unchanged rows to the same content.
    let changed = data(3, 4, 7);
    first.set_data(changed.clone());
    let report = poll_once(
        &fixture.pool,
        &fixture.vault,
        &settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.counts.ok, 2);
    assert_eq!(
        fixture.stored_accounts(first_id).await,
        expected_accounts(&changed)
    );
    assert_eq!(
        fixture.stored_accounts(second_id).await,
        expected_accounts(&second_data)
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn named_server_poll_leaves_others_untouched(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let first_data = data(4, 2, 5);
    let first = start(13, first_data.clone(), Behavior::default()).await;
    let second = start(14, data(5, 2, 5), Behavior::default()).await;
    let first_id = fixture.register(&first, "secret").await;
    let second_id = fixture.register(&second, "secret").await;

    let only_first = PollSettings {
        hostnames: vec!["127.0.0.13".to_owned()],
        ..settings()
    };
    let report = poll_once(
        &fixture.pool,
        &fixture.vault,
        &only_first,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.counts.total, 1);
    assert_eq!(
        fixture.stored_accounts(first_id).await,
        expected_accounts(&first_data)
    );
    assert!(fixture.stored_accounts(second_id).await.is_empty());

    let unknown = PollSettings {
        hostnames: vec!["nowhere.test".to_owned()],
        ..settings()
    };
    let error = poll_once(
        &fixture.pool,
        &fixture.vault,
        &unknown,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("nowhere.test"), "{error}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn failing_servers_keep_previous_snapshot(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let healthy_data = data(10, 2, 8);
    let healthy = start(21, healthy_data.clone(), Behavior::default()).await;
    let healthy_id = fixture.register(&healthy, "secret").await;

    // Four servers that will fail in four ways once they have a snapshot.
    let mut failing = Vec::new();
    for (index, host) in [22_u8, 23, 24, 25].into_iter().enumerate() {
        let served = data(20 + index as u64, 2, 6);
        let sim = start(host, served.clone(), Behavior::default()).await;
        let id = fixture.register(&sim, "secret").await;
        failing.push((format!("127.0.0.{host}"), sim, id, served));
    }
    let first = poll_once(
        &fixture.pool,
        &fixture.vault,
        &settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(first.counts.ok, 5, "{:?}", first.servers);

    // 127.0.0.22 drops every connection in the middle of a registry reply,
    // so the retry fails too.
    failing[0].1.set_behavior(Behavior {
        close_mid_reply: Some(MidReplyTrigger::OnCommand(
            "SHOW RegistryInformation".to_owned(),
        )),
        ..Behavior::default()
    });
    // 127.0.0.23 replies more slowly than the per-server timeout allows.
    failing[1].1.set_behavior(Behavior {
        reply_latency: Duration::from_millis(400),
        ..Behavior::default()
    });
    // 127.0.0.24 gets a stored password that the server rejects.
    sqlx::query("UPDATE servers SET password_encrypted = $1 WHERE id = $2")
        .bind(fixture.vault.encrypt(&Secret::new("wrong-password")))
        .bind(failing[2].2)
        .execute(&fixture.pool)
        .await
        .unwrap();
    // 127.0.0.25 has a password encrypted with a key that is not configured.
    let other_vault = Vault::from_keys(&Vault::generate_key()).unwrap();
    sqlx::query("UPDATE servers SET password_encrypted = $1 WHERE id = $2")
        .bind(other_vault.encrypt(&Secret::new("secret")))
        .bind(failing[3].2)
        .execute(&fixture.pool)
        .await
        .unwrap();
    for (_, sim, _, _) in &failing {
        sim.set_data(data(99, 1, 1));
    }
    let changed_healthy = data(11, 3, 4);
    healthy.set_data(changed_healthy.clone());

    let short_timeout = PollSettings {
        server_timeout: Duration::from_secs(2),
        ..settings()
    };
    let second = poll_once(
        &fixture.pool,
        &fixture.vault,
        &short_timeout,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(second.counts.ok, 1, "{:?}", second.servers);
    assert_eq!(second.counts.failed, 4);
    assert_eq!(second.exit_code(), 2);
    assert_eq!(
        fixture.stored_accounts(healthy_id).await,
        expected_accounts(&changed_healthy)
    );

    for (hostname, _, id, served) in &failing {
        assert_eq!(
            fixture.stored_accounts(*id).await,
            expected_accounts(served),
            "{hostname} lost its previous snapshot"
        );
        let outcome = second
            .servers
            .iter()
            .find(|outcome| &outcome.result.hostname == hostname)
            .unwrap();
        let error = outcome.result.error.as_deref().unwrap_or_default();
        assert!(error.contains(hostname), "{hostname}: {error}");
        assert!(!error.contains("wrong-password"), "{error}");
    }
    let error_of = |hostname: &str| {
        second
            .servers
            .iter()
            .find(|outcome| outcome.result.hostname == hostname)
            .and_then(|outcome| outcome.result.error.clone())
            .unwrap()
    };
    assert!(
        error_of("127.0.0.23").contains("timed out"),
        "{}",
        error_of("127.0.0.23")
    );
    assert!(
        error_of("127.0.0.25").contains("FERNET_KEY"),
        "{}",
        error_of("127.0.0.25")
    );

    let recorded: Vec<(String, String)> = sqlx::query_as(
        "SELECT hostname, status FROM poll_results r JOIN poll_runs p ON p.id = r.run_id \
         WHERE p.id = $1 ORDER BY hostname",
    )
    .bind(second.run_id.unwrap())
    .fetch_all(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(recorded.len(), 5);
    assert_eq!(
        recorded
            .iter()
            .filter(|(_, status)| status == "failed")
            .count(),
        4
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_pollers_write_each_server_once(pool: PgPool) {
    let fixture = Fixture::new(pool);
    // Latency keeps every collection running long enough for both pollers
    // to try every lock while the first holder still has it.
    let (ids, sims) = fixture.start_slow_servers(31, 4, 20).await;

    let settings = settings();
    let token = CancellationToken::new();
    let (left, right) = tokio::join!(
        poll_once(&fixture.pool, &fixture.vault, &settings, &token),
        poll_once(&fixture.pool, &fixture.vault, &settings, &token),
    );
    let (left, right) = (left.unwrap(), right.unwrap());
    assert_eq!(left.counts.ok + right.counts.ok, 4, "{left:?} {right:?}");
    assert_eq!(left.counts.locked + right.counts.locked, 4);
    assert_eq!(left.counts.failed + right.counts.failed, 0);
    assert_eq!(left.exit_code(), 0);
    assert_eq!(right.exit_code(), 0);

    for (id, sim) in ids.iter().zip(&sims) {
        let writes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM poll_results WHERE server_id = $1 AND status = 'ok'",
        )
        .bind(id)
        .fetch_one(&fixture.pool)
        .await
        .unwrap();
        assert_eq!(writes, 1);
        assert_eq!(
            fixture.stored_accounts(*id).await,
            expected_accounts(&sim.data())
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn more_servers_than_pool_connections_poll_at_once(pool: PgPool) {
    let fixture = Fixture::new(pool);
    // Latency keeps all six collections running at the same time.
    let (ids, sims) = fixture.start_slow_servers(71, 6, 30).await;
    let small_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with((*fixture.pool.connect_options()).clone())
        .await
        .unwrap();

    // Counts the poll locks held in this test's database while the poll runs.
    let watcher_pool = fixture.pool.clone();
    let done = CancellationToken::new();
    let watcher_done = done.clone();
    let watcher = tokio::spawn(async move {
        let mut max_locks = 0;
        while !watcher_done.is_cancelled() {
            let locks: i64 = sqlx::query_scalar(concat!("SELECT count(*) ", granted_poll_locks!()))
                .fetch_one(&watcher_pool)
                .await
                .unwrap();
            max_locks = max_locks.max(locks);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        max_locks
    });

    let settings = PollSettings {
        max_servers: 6,
        ..settings()
    };
    let report = poll_once(
        &small_pool,
        &fixture.vault,
        &settings,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    done.cancel();
    let max_locks_held = watcher.await.unwrap();

    assert_eq!(report.counts.ok, 6, "{:?}", report.servers);
    assert_eq!(max_locks_held, 6, "all six servers were polled at once");
    fixture.assert_stored(&ids, &sims).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn pinned_certificate_polled_over_tls(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let served = data(80, 2, 4);
    let address = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 81), 0));
    let sim = SimServer::start_on(
        address,
        address,
        served.clone(),
        SimOptions {
            cli_tls: true,
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let pin = axiquota_core::axigen::tls::fingerprint(sim.certificate_der());
    let server = NewServer {
        name: "pinned".to_owned(),
        hostname: "127.0.0.81".to_owned(),
        cli_port: sim.cli_addr().port(),
        webadmin_port: sim.webadmin_addr().port(),
        username: "admin".to_owned(),
        password: Secret::new("secret"),
        cli_tls: true,
        tls_verify: true,
        tls_fingerprints: vec![pin],
        webadmin_enabled: false,
        webadmin_allow_http: false,
    };
    let id = servers::insert(&fixture.pool, &fixture.vault, &server)
        .await
        .unwrap()
        .id;

    let report = poll_once(
        &fixture.pool,
        &fixture.vault,
        &settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.counts.ok, 1, "{:?}", report.servers);
    assert_eq!(
        fixture.stored_accounts(id).await,
        expected_accounts(&served)
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_label_given_for_host_name_is_explained(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let sim = start(91, data(90, 1, 2), Behavior::default()).await;
    fixture.register(&sim, "secret").await;

    let settings = PollSettings {
        hostnames: vec!["FAKE 127.0.0.91".to_owned(), "mx9.example.net".to_owned()],
        ..settings()
    };
    let error = poll_once(
        &fixture.pool,
        &fixture.vault,
        &settings,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error
            .starts_with("no registered server has the host name FAKE 127.0.0.91, mx9.example.net"),
        "{error}"
    );
    assert!(
        error.contains("\"FAKE 127.0.0.91\" is the name of the server with host name 127.0.0.91"),
        "{error}"
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM poll_runs")
        .fetch_one(&fixture.pool)
        .await
        .unwrap();
    assert_eq!(runs, 0, "nothing is recorded");
}

#[sqlx::test(migrations = "../../migrations")]
async fn dry_run_writes_nothing(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let served = data(40, 2, 4);
    let sim = start(41, served.clone(), Behavior::default()).await;
    let id = fixture.register(&sim, "secret").await;

    let output = fixture
        .poller_command(&["--dry-run", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    let printed_accounts: usize = report["servers"][0]["snapshot"]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|domain| domain["accounts"].as_array().unwrap().len())
        .sum();
    assert_eq!(printed_accounts, served.account_count());

    assert!(fixture.stored_accounts(id).await.is_empty());
    let counts = [
        ("domains", "SELECT count(*) FROM domains"),
        ("accounts", "SELECT count(*) FROM accounts"),
        ("poll_runs", "SELECT count(*) FROM poll_runs"),
        ("poll_results", "SELECT count(*) FROM poll_results"),
    ];
    for (table, query) in counts {
        let rows: i64 = sqlx::query_scalar(query)
            .fetch_one(&fixture.pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "dry run wrote to {table}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn binary_exits_two_when_a_server_fails(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let good_data = data(50, 1, 3);
    let good = start(51, good_data.clone(), Behavior::default()).await;
    let bad = start(52, data(51, 1, 3), Behavior::default()).await;
    let good_id = fixture.register(&good, "secret").await;
    fixture.register(&bad, "not-the-password").await;

    let output = fixture.poller_command(&[]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    let bad_line = stdout
        .lines()
        .find(|line| line.contains("127.0.0.52"))
        .unwrap();
    assert!(bad_line.starts_with("failed"), "{bad_line}");
    let good_line = stdout
        .lines()
        .find(|line| line.contains("127.0.0.51"))
        .unwrap();
    assert!(good_line.starts_with("ok"), "{good_line}");
    assert!(!stdout.contains("not-the-password"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("not-the-password"));
    assert_eq!(
        fixture.stored_accounts(good_id).await,
        expected_accounts(&good_data)
    );
}

#[sqlx::test(migrations = false)]
async fn binary_names_the_fix_for_a_database_without_schema(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let output = fixture.poller_command(&[]).output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("run `migrator run`").count(), 1, "{stderr}");
}

#[test]
fn binary_names_the_variable_of_an_invalid_value() {
    let output = Command::new(env!("CARGO_BIN_EXE_poller"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("POLL_OUTPUT", "yaml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'yaml'"), "{stderr}");
    assert!(
        stderr.contains("comes from the environment variable POLL_OUTPUT"),
        "{stderr}"
    );
}

#[test]
fn binary_exits_one_without_configuration() {
    let output = Command::new(env!("CARGO_BIN_EXE_poller"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env_remove("DATABASE_URL")
        .env_remove("FERNET_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FERNET_KEY is not set"), "{stderr}");
}

#[cfg(unix)]
#[sqlx::test(migrations = "../../migrations")]
async fn sigterm_during_every_leaves_no_half_written_server(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let fast_data = data(60, 2, 4);
    let fast = start(61, fast_data.clone(), Behavior::default()).await;
    let slow = start(
        62,
        data(61, 3, 40),
        Behavior {
            reply_latency: Duration::from_millis(50),
            ..Behavior::default()
        },
    )
    .await;
    let fast_id = fixture.register(&fast, "secret").await;
    let slow_id = fixture.register(&slow, "secret").await;

    let mut child = fixture
        .poller_command(&["--every", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until the fast server is written, then stop the poller while the
    // slow one is still being collected.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fixture.stored_accounts(fast_id).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "fast server was never written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("poller stops within 30 s of SIGTERM")
        .unwrap();
    assert!(
        status.code().is_some(),
        "poller was killed instead of exiting: {status:?}"
    );

    assert_eq!(
        fixture.stored_accounts(fast_id).await,
        expected_accounts(&fast_data)
    );
    let slow_rows = fixture.stored_accounts(slow_id).await;
    assert!(
        slow_rows.is_empty() || slow_rows == expected_accounts(&slow.data()),
        "slow server was half written: {} rows",
        slow_rows.len()
    );
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM poll_runs WHERE finished_at IS NULL")
            .fetch_one(&fixture.pool)
            .await
            .unwrap();
    assert_eq!(unfinished, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn binary_names_servers_that_drop_commands_sent_ahead(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let taking_data = data(70, 1, 5);
    let dropping_data = data(71, 4, 5);
    let taking = start(71, taking_data.clone(), Behavior::default()).await;
    let dropping_behavior = Behavior {
        discard_typeahead: true,
        ..Behavior::default()
    };
    let dropping = start(72, dropping_data.clone(), dropping_behavior).await;
    let taking_id = fixture.register(&taking, "secret").await;
    let dropping_id = fixture.register(&dropping, "secret").await;

    let output = fixture
        .poller_command(&["--send-ahead", "--reply-timeout", "1s"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("1 server left commands sent ahead unanswered"),
        "{stdout}"
    );
    // Every session of the dropping server timed out, and the log reports
    // it once.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("commands sent ahead timed out").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        fixture.stored_accounts(taking_id).await,
        expected_accounts(&taking_data)
    );
    assert_eq!(
        fixture.stored_accounts(dropping_id).await,
        expected_accounts(&dropping_data)
    );
    assert!(taking.stats().commands_sent_ahead > 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn broken_lock_connection_is_replaced(pool: PgPool) {
    let fixture = Fixture::new(pool);
    // One server at a time, each slow enough to catch its lock held.
    let (ids, sims) = fixture.start_slow_servers(101, 3, 30).await;
    let settings = PollSettings {
        max_servers: 1,
        ..settings()
    };
    let poll = fixture.spawn_poll(settings);

    // Ends the connection that holds the first server's lock.
    let pool = &fixture.pool;
    let lock_pid = wait_while_running(&poll, "its lock was seen", || async move {
        sqlx::query_scalar(concat!("SELECT pid ", granted_poll_locks!(), " LIMIT 1"))
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    terminate_session(pool, lock_pid).await;

    let report = poll.await.unwrap().unwrap();
    // The servers after the first take their locks on a new connection.
    assert_eq!(report.counts.ok, 3, "{:?}", report.servers);
    fixture.assert_stored(&ids, &sims).await;
}

/// Runs `probe` every 2 ms while `task` runs and returns its first `Some`.
/// Fails the test, naming `awaited`, when the task ends first.
async fn wait_while_running<T, R, Probe, Fut>(
    task: &JoinHandle<R>,
    awaited: &str,
    mut probe: Probe,
) -> T
where
    Probe: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(!task.is_finished(), "the task ended before {awaited}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Returns the process id of the connection that holds the poll lock of
/// `server_id`, if one does.
async fn poll_lock_holder(pool: &PgPool, server_id: Uuid) -> Option<i32> {
    sqlx::query_scalar(concat!(
        "SELECT pid ",
        granted_poll_locks!(),
        " AND objid = hashtext($1::text)::oid"
    ))
    .bind(server_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Ends the database session `pid`, as a broken connection would.
async fn terminate_session(pool: &PgPool, pid: i32) {
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(terminated, "session {pid} was not terminated");
}

/// Waits while `poll` runs for the poll lock of `server_id` to be held by a
/// session not in `excluded`, and returns that session's process id.
async fn wait_for_lock_holder<T>(
    pool: &PgPool,
    poll: &JoinHandle<T>,
    server_id: Uuid,
    excluded: &[i32],
) -> i32 {
    let awaited = format!("the lock of {server_id} was held by a session not in {excluded:?}");
    wait_while_running(poll, &awaited, || async move {
        poll_lock_holder(pool, server_id)
            .await
            .filter(|pid| !excluded.contains(pid))
    })
    .await
}

#[sqlx::test(migrations = "../../migrations")]
async fn broken_lock_connection_locks_taken_back(pool: PgPool) {
    let fixture = Fixture::new(pool);
    // The slow server is still being polled when the fast one beside it
    // ends and finds the lock connection broken.
    let (ids, sims) = fixture
        .start_servers_with_latency(&[(111, 40), (112, 5), (113, 5)])
        .await;
    let slow_id = ids[0];
    let poll = fixture.spawn_poll(PollSettings {
        max_servers: 2,
        ..settings()
    });

    // Ends the lock connection once it holds the locks of the first two,
    // the slow server's among them.
    let pool = &fixture.pool;
    let lock_pid = wait_while_running(&poll, "both locks were seen", || async move {
        sqlx::query_scalar(concat!(
            "SELECT pid ",
            granted_poll_locks!(),
            " GROUP BY pid HAVING count(*) = 2"
        ))
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        poll_lock_holder(&fixture.pool, slow_id).await,
        Some(lock_pid)
    );
    terminate_session(&fixture.pool, lock_pid).await;

    // A new lock connection takes the slow server's lock back while the
    // server is still being polled, and not the lock of the fast server,
    // which has ended.
    wait_for_lock_holder(pool, &poll, slow_id, &[lock_pid]).await;
    assert_eq!(poll_lock_holder(&fixture.pool, ids[1]).await, None);

    let report = poll.await.unwrap().unwrap();
    assert_eq!(report.counts.ok, 3, "{:?}", report.servers);
    fixture.assert_stored(&ids, &sims).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn lock_held_elsewhere_taken_back_later(pool: PgPool) {
    let fixture = Fixture::new(pool);
    let (ids, _sims) = fixture
        .start_servers_with_latency(&[(121, 40), (122, 5), (123, 5), (124, 5)])
        .await;
    let slow_id = ids[0];
    let poll = fixture.spawn_poll(PollSettings {
        max_servers: 2,
        ..settings()
    });

    let pool = &fixture.pool;
    let lock_pid = wait_for_lock_holder(pool, &poll, slow_id, &[]).await;
    // Another session queues for the slow server's lock, as a second
    // poller would, so it gets the lock the moment the broken connection's
    // process ends, before the run can take it back.
    let mut other = fixture.pool.acquire().await.unwrap().detach();
    let other_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut other)
        .await
        .unwrap();
    let queued = tokio::spawn(async move {
        sqlx::query(
            "SELECT pg_advisory_lock(classid::text::int, objid::bigint::bit(32)::int) \
             FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1 \
             AND objid = hashtext($2::text)::oid",
        )
        .bind(lock_pid)
        .bind(slow_id)
        .execute(&mut other)
        .await
        .unwrap();
        other
    });
    wait_while_running(&queued, "the lock request waited", || async move {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)",
        )
        .bind(other_pid)
        .fetch_one(pool)
        .await
        .unwrap();
        waiting.then_some(())
    })
    .await;
    terminate_session(&fixture.pool, lock_pid).await;
    let mut other = queued.await.unwrap();
    assert_eq!(
        poll_lock_holder(&fixture.pool, slow_id).await,
        Some(other_pid)
    );

    // Waits for the run's new lock connection: the first lock held by a
    // session that is neither the broken one nor this test's.
    wait_while_running(&poll, "a new lock connection was seen", || async move {
        sqlx::query_scalar::<_, i32>(concat!(
            "SELECT pid ",
            granted_poll_locks!(),
            " AND pid <> $1 AND pid <> $2 LIMIT 1"
        ))
        .bind(lock_pid)
        .bind(other_pid)
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    axiquota_core::store::polls::unlock_server(&mut other, slow_id)
        .await
        .unwrap();

    // The next server to start or end takes the released lock back.
    wait_for_lock_holder(pool, &poll, slow_id, &[lock_pid, other_pid]).await;

    let report = poll.await.unwrap().unwrap();
    assert_eq!(report.counts.ok, 4, "{:?}", report.servers);
}
