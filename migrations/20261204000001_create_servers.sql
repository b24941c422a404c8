-- The Axigen servers to poll and how to reach them.
CREATE TABLE servers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    hostname text NOT NULL CHECK (length(hostname) BETWEEN 1 AND 253),
    cli_port integer NOT NULL DEFAULT 7000 CHECK (cli_port BETWEEN 1 AND 65535),
    webadmin_port integer NOT NULL DEFAULT 9000 CHECK (webadmin_port BETWEEN 1 AND 65535),
    username text NOT NULL CHECK (length(username) BETWEEN 1 AND 255),
    password_encrypted text NOT NULL,
    cli_tls boolean NOT NULL DEFAULT false,
    tls_verify boolean NOT NULL DEFAULT true,
    webadmin_enabled boolean NOT NULL DEFAULT true,
    webadmin_allow_http boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE servers IS 'Axigen servers to poll; one row per server, keyed by host name';
COMMENT ON COLUMN servers.id IS 'Stable identifier that snapshot and poll rows refer to, so a host name can change';
COMMENT ON COLUMN servers.name IS 'Label chosen by the administrator, shown in reports';
COMMENT ON COLUMN servers.hostname IS 'Host name or IP address of the server; unique regardless of letter case';
COMMENT ON COLUMN servers.cli_port IS 'TCP port of the admin CLI (Axigen default 7000)';
COMMENT ON COLUMN servers.webadmin_port IS 'TCP port of WebAdmin, used for the usage feed (Axigen default 9000)';
COMMENT ON COLUMN servers.username IS 'Admin user for the CLI and for WebAdmin Basic authentication';
COMMENT ON COLUMN servers.password_encrypted IS 'Admin password as a Fernet token made with FERNET_KEY; never stored in clear';
COMMENT ON COLUMN servers.cli_tls IS 'The CLI listener speaks TLS from the first byte';
COMMENT ON COLUMN servers.tls_verify IS 'Check TLS certificates; off for servers with self-signed certificates';
COMMENT ON COLUMN servers.webadmin_enabled IS 'Read mailbox usage from the WebAdmin feed in one request instead of one CLI round trip per account';
COMMENT ON COLUMN servers.webadmin_allow_http IS 'Allow the WebAdmin feed over plain HTTP when HTTPS fails; sends the credentials in clear';
COMMENT ON COLUMN servers.created_at IS 'When the server was registered';
COMMENT ON COLUMN servers.updated_at IS 'When the registration last changed, for example by a key rotation';

-- Host names are case-insensitive in DNS, so mx1.example.com and
-- MX1.Example.com are the same server.
CREATE UNIQUE INDEX servers_hostname_lower_key ON servers (lower(hostname));
