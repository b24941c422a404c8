//! The CLI over implicit TLS: TLS from the first byte, then the same
//! session.

mod common;

use std::sync::Arc;

use axigen_sim::{SimOptions, SimServer};
use common::{RawClient, example_data};
use tokio::net::TcpStream;

#[tokio::test]
async fn implicit_tls_cli_serves_session() {
    let options = SimOptions {
        cli_tls: true,
        ..SimOptions::default()
    };
    let server = SimServer::start(example_data(), options).await.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            server.certificate_der().to_vec(),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.cli_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();

    let mut client = RawClient::new(tls);
    client.login().await;
    let reply = client.command("LIST AllDomains").await;
    assert!(reply.contains("\r\nexample.com                     enabled     2\r\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn implicit_tls_cli_sends_no_plain_banner() {
    let options = SimOptions {
        cli_tls: true,
        ..SimOptions::default()
    };
    let server = SimServer::start(example_data(), options).await.unwrap();
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.send("USER admin").await;
    let received = client.read_to_close().await;
    assert!(
        !received.starts_with(b"Welcome"),
        "plain text on a TLS port: {received:?}"
    );
    assert_eq!(server.stats().logins_succeeded, 0);
}
