//! End to end: the real `migrator`, `api` and `poller` binaries against a
//! fresh PostgreSQL database and fake Axigen servers on 127.0.0.x, checked
//! through the API's reports against the data the fake servers served.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axigen_sim::{
    Behavior, GenerateSpec, MidReplyTrigger, ServerData, SimHandle, SimOptions, SimServer,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// Directory of the binaries built in the same profile as this test.
fn binary_dir() -> PathBuf {
    let test_executable = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> -> target/<profile>
    test_executable
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// Builds the binaries so the test runs the current code even when only
/// this test target was compiled. `scripts/test` sets
/// AXIQUOTA_E2E_BINARIES_BUILT when its one `cargo test` of the workspace
/// has built them already. Building them again would compile the
/// workspace a second time with other features.
async fn build_binaries() {
    if std::env::var_os("AXIQUOTA_E2E_BINARIES_BUILT").is_some() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    // The whole workspace, so that features resolve as in
    // `cargo test --workspace` and nothing is compiled a second time.
    command.args(["build", "--workspace", "--bins"]);
    if binary_dir().ends_with("release") {
        command.arg("--release");
    }
    let status = command.status().await.unwrap();
    assert!(status.success(), "building the binaries failed");
}

fn binary(name: &str) -> Command {
    let mut command = Command::new(binary_dir().join(name));
    command
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env_remove("POLL_SERVERS")
        .env_remove("POLL_EVERY")
        .env_remove("API_NO_AUTH")
        .env("RUST_LOG", "warn");
    command
}

/// Builds a URL for the test's own database on the server of DATABASE_URL.
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").unwrap();
    let database = pool.connect_options().get_database().unwrap().to_owned();
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_fake(host: u8, data: ServerData, behavior: Behavior) -> SimHandle {
    let address = SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0));
    let options = SimOptions {
        behavior,
        ..SimOptions::default()
    };
    SimServer::start_on(address, address, data, options)
        .await
        .unwrap()
}

struct Api {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn start(database_url: &str, fernet_key: &str, secret: &str) -> Self {
        let port = free_port();
        let child = binary("api")
            .env("DATABASE_URL", database_url)
            .env("FERNET_KEY", fernet_key)
            .env("API_JWT_SECRET", secret)
            .env("API_LISTEN", format!("127.0.0.1:{port}"))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // reqwest is built without a default TLS provider; the test client
        // uses ring, like the project's own clients.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        for _ in 0..200 {
            if let Ok(response) = api.client.get(format!("{}/ready", api.base)).send().await {
                if response.status().is_success() {
                    return api;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the API did not become ready");
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }
}

async fn token(scope: &str, secret: &str) -> String {
    let output = binary("api")
        .args(["token", "--scope", scope, "--ttl", "1h"])
        .env("API_JWT_SECRET", secret)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The account objects the API must report for a fake server's data,
/// keyed by email, with every figure computed from the served values.
fn expected_accounts(data: &ServerData, usage_source: &str) -> BTreeMap<String, Value> {
    let mut accounts = BTreeMap::new();
    for domain in &data.domains {
        for account in &domain.accounts {
            let quota_kb = account.quota_kb.filter(|quota| *quota > 0);
            let used_mb = account.used_kb / 1024;
            let assigned_mb = quota_kb.map(|quota| quota / 1024);
            let email = format!("{}@{}", account.name, domain.name);
            accounts.insert(
                email.clone(),
                json!({
                    "email": email,
                    "local_part": account.name,
                    "domain": domain.name,
                    "quota_kb": quota_kb,
                    "used_kb": account.used_kb,
                    "assigned_mb": assigned_mb,
                    "used_mb": used_mb,
                    "free_mb": assigned_mb.map(|assigned| assigned as i64 - used_mb as i64),
                    "usage_source": usage_source,
                    "status": null,
                }),
            );
        }
    }
    accounts
}

/// Collects the reported accounts of one server, keyed by email and reduced
/// to the fields that `expected_accounts` computes.
fn reported_accounts(server: &Value) -> BTreeMap<String, Value> {
    let keys = [
        "email",
        "local_part",
        "domain",
        "quota_kb",
        "used_kb",
        "assigned_mb",
        "used_mb",
        "free_mb",
        "usage_source",
        "status",
    ];
    let mut accounts = BTreeMap::new();
    for domain in server["domains"].as_array().unwrap() {
        let listed = domain["accounts"].as_array().unwrap();
        assert_eq!(domain["total_accounts"], listed.len());
        for account in listed {
            let reduced: serde_json::Map<String, Value> = keys
                .iter()
                .map(|key| ((*key).to_owned(), account[*key].clone()))
                .collect();
            accounts.insert(
                account["email"].as_str().unwrap().to_owned(),
                Value::Object(reduced),
            );
        }
    }
    accounts
}

#[sqlx::test(migrations = false)]
async fn poll_and_report_through_binaries(pool: PgPool) {
    build_binaries().await;
    let database_url = database_url(&pool);
    let secret = "an end-to-end test secret of more than 32 bytes";

    // The migrator creates the schema in the empty database.
    let output = binary("migrator")
        .arg("run")
        .env("DATABASE_URL", &database_url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key_output = binary("migrator")
        .arg("generate-key")
        .output()
        .await
        .unwrap();
    let fernet_key = String::from_utf8(key_output.stdout)
        .unwrap()
        .trim()
        .to_owned();

    // Three fake servers: usage from WebAdmin, usage from the CLI, and one
    // that drops every connection in the middle of a quota reply.
    let spec = |seed, domains, accounts_per_domain| GenerateSpec {
        seed,
        domains,
        accounts_per_domain,
        ..GenerateSpec::default()
    };
    let webadmin_data = ServerData::generate(&spec(81, 3, 30));
    let cli_data = ServerData::generate(&spec(82, 2, 20));
    let webadmin_fake = start_fake(81, webadmin_data.clone(), Behavior::default()).await;
    let cli_fake = start_fake(82, cli_data.clone(), Behavior::default()).await;
    let failing_fake = start_fake(
        83,
        ServerData::generate(&spec(83, 2, 10)),
        Behavior {
            close_mid_reply: Some(MidReplyTrigger::OnCommand("CONFIG Quotas".to_owned())),
            ..Behavior::default()
        },
    )
    .await;

    let api = Api::start(&database_url, &fernet_key, secret).await;
    let admin = token("admin", secret).await;
    let read = token("read", secret).await;

    let registrations = [
        ("webadmin", &webadmin_fake, true),
        ("cli", &cli_fake, false),
        ("failing", &failing_fake, false),
    ];
    for (name, fake, webadmin) in registrations {
        let body = json!({
            "name": name,
            "hostname": fake.cli_addr().ip().to_string(),
            "cli_port": fake.cli_addr().port(),
            "webadmin_port": fake.webadmin_addr().port(),
            "username": "admin",
            "password": "secret",
            "webadmin_enabled": webadmin,
            "webadmin_allow_http": webadmin,
        });
        let response = api
            .client
            .post(format!("{}/add_server", api.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "add_server {name}");
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["success"], true);
        assert!(created["server"].get("password").is_none());
    }

    // The poller writes two servers and exits 2 for the failing one.
    let output = binary("poller")
        .args(["--progress-interval", "0", "--server-timeout", "60s"])
        .env("DATABASE_URL", &database_url)
        .env("FERNET_KEY", &fernet_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line_of = |host: &str| {
        stdout
            .lines()
            .find(|line| line.contains(host))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line_of("127.0.0.81").starts_with("ok"), "{stdout}");
    assert!(line_of("127.0.0.82").starts_with("ok"), "{stdout}");
    assert!(line_of("127.0.0.83").starts_with("failed"), "{stdout}");
    assert!(
        stdout.contains("3 servers: 2 ok, 1 failed, 0 locked"),
        "{stdout}"
    );

    // The full report contains every account of the two healthy servers with
    // every figure, and nothing for the failed one.
    let report = api.get("/report", &read).await;
    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    let by_host = |host: &str| {
        servers
            .iter()
            .find(|server| server["hostname"] == host)
            .unwrap()
            .clone()
    };
    assert_eq!(
        reported_accounts(&by_host("127.0.0.81")),
        expected_accounts(&webadmin_data, "webadmin")
    );
    assert_eq!(
        reported_accounts(&by_host("127.0.0.82")),
        expected_accounts(&cli_data, "cli")
    );
    assert_eq!(by_host("127.0.0.83")["domains"], json!([]));

    // Domain status and the single-account form agree with the served data.
    let webadmin_report = by_host("127.0.0.81");
    for domain in &webadmin_data.domains {
        let reported = webadmin_report["domains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|candidate| candidate["name"] == domain.name.as_str())
            .unwrap();
        let status = if domain.enabled {
            "enabled"
        } else {
            "disabled"
        };
        assert_eq!(reported["status"], status, "domain {}", domain.name);
    }
    let sample_domain = &cli_data.domains[0];
    let sample = &sample_domain.accounts[0];
    let address = format!("{}@{}", sample.name.to_uppercase(), sample_domain.name);
    let single = api
        .get(
            &format!("/report?account={}&server=127.0.0.82", urlencode(&address)),
            &read,
        )
        .await;
    assert_eq!(single["used_kb"], sample.used_kb);
    assert_eq!(single["local_part"], sample.name.as_str());

    // The failed server's last poll gives the reason, without the password.
    let listed = api.get("/servers", &read).await;
    let failing = listed["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|server| server["hostname"] == "127.0.0.83")
        .unwrap()
        .clone();
    assert_eq!(failing["last_poll"]["status"], "failed");
    let error = failing["last_poll"]["error"].as_str().unwrap();
    assert!(error.contains("127.0.0.83"), "{error}");
    assert!(!error.contains("secret"), "{error}");

    // The read-only poller sent no writing command to any server.
    for fake in [&webadmin_fake, &cli_fake, &failing_fake] {
        assert_eq!(fake.stats().writing_commands, 0);
    }

    // SIGTERM stops the API cleanly.
    let mut child = api.child;
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the API stops within 30 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Percent-encodes a query value (the address may contain non-ASCII and @).
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A missing DATABASE_URL stops each binary with exit code 1 and a message
/// that names the variable.
#[tokio::test]
async fn binaries_name_missing_database_url() {
    build_binaries().await;
    for (name, args) in [
        ("migrator", vec!["run"]),
        ("poller", vec![]),
        ("api", vec!["--no-auth"]),
    ] {
        let output = binary(name)
            .args(&args)
            .env_remove("DATABASE_URL")
            .env("FERNET_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .stdout(Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("DATABASE_URL"), "{name}: {stderr}");
    }
}
