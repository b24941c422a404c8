-- Axigen servers often present self-signed certificates, which the
-- platform's trust store rejects. Pinning their SHA-256 fingerprints lets
-- the poller check them instead of turning certificate checking off.
ALTER TABLE servers
    ADD COLUMN tls_fingerprints text[] NOT NULL DEFAULT '{}'
        CONSTRAINT servers_tls_fingerprints_check CHECK (
            cardinality(tls_fingerprints) <= 8
            AND array_position(tls_fingerprints, NULL) IS NULL
            AND array_to_string(tls_fingerprints, ',') ~ '^([0-9a-f]{64}(,[0-9a-f]{64})*)?$'
        );

COMMENT ON COLUMN servers.tls_fingerprints IS
    'SHA-256 fingerprints (lower-case hex) of the certificates accepted for the CLI over TLS and WebAdmin over HTTPS, whatever their issuer, name or dates; empty to check certificates as tls_verify says';
