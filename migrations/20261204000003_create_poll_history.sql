-- A record of every poll run and of each server's outcome in it, so reports
-- can show how fresh each snapshot is and why a server failed.
CREATE TABLE poll_runs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    poller_host text NOT NULL DEFAULT '',
    dry_run boolean NOT NULL DEFAULT false,
    servers_total integer NOT NULL DEFAULT 0 CHECK (servers_total >= 0),
    servers_ok integer NOT NULL DEFAULT 0 CHECK (servers_ok >= 0),
    servers_failed integer NOT NULL DEFAULT 0 CHECK (servers_failed >= 0),
    servers_locked integer NOT NULL DEFAULT 0 CHECK (servers_locked >= 0)
);

COMMENT ON TABLE poll_runs IS 'One row per poller run';
COMMENT ON COLUMN poll_runs.id IS 'Run identifier, also printed in the poller log';
COMMENT ON COLUMN poll_runs.started_at IS 'When the run began';
COMMENT ON COLUMN poll_runs.finished_at IS 'When the run ended; NULL while it runs or if the poller was killed';
COMMENT ON COLUMN poll_runs.poller_host IS 'Host name of the machine that ran the poller, to tell instances apart';
COMMENT ON COLUMN poll_runs.dry_run IS 'The run collected but wrote no snapshot';
COMMENT ON COLUMN poll_runs.servers_total IS 'Servers the run set out to poll';
COMMENT ON COLUMN poll_runs.servers_ok IS 'Servers whose snapshot was replaced';
COMMENT ON COLUMN poll_runs.servers_failed IS 'Servers that kept their previous snapshot because collection or writing failed';
COMMENT ON COLUMN poll_runs.servers_locked IS 'Servers skipped because another poller held their lock';

CREATE INDEX poll_runs_started_at_idx ON poll_runs (started_at DESC);

CREATE TABLE poll_results (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES poll_runs (id) ON DELETE CASCADE,
    server_id uuid REFERENCES servers (id) ON DELETE CASCADE,
    hostname text NOT NULL,
    status text NOT NULL CHECK (status IN ('ok', 'failed', 'locked')),
    error text,
    started_at timestamptz NOT NULL,
    duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
    domains integer NOT NULL DEFAULT 0 CHECK (domains >= 0),
    accounts integer NOT NULL DEFAULT 0 CHECK (accounts >= 0),
    skipped integer NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    skipped_items jsonb NOT NULL DEFAULT '[]',
    usage_source text CHECK (usage_source IN ('webadmin', 'cli', 'mixed', 'none')),
    webadmin_error text
);

COMMENT ON TABLE poll_results IS 'Outcome of each server in each poll run';
COMMENT ON COLUMN poll_results.id IS 'Row identity';
COMMENT ON COLUMN poll_results.run_id IS 'Run the result belongs to';
COMMENT ON COLUMN poll_results.server_id IS 'Server polled; the history goes when the server is deleted';
COMMENT ON COLUMN poll_results.hostname IS 'Host name at the time of the poll, for messages that outlive a rename';
COMMENT ON COLUMN poll_results.status IS 'ok: snapshot replaced; failed: previous snapshot kept; locked: another poller had it';
COMMENT ON COLUMN poll_results.error IS 'Why the server failed: host name and cause, never a password';
COMMENT ON COLUMN poll_results.started_at IS 'When collection of this server began';
COMMENT ON COLUMN poll_results.duration_ms IS 'Milliseconds from the start of collection to the commit or the failure';
COMMENT ON COLUMN poll_results.domains IS 'Domains written';
COMMENT ON COLUMN poll_results.accounts IS 'Accounts written';
COMMENT ON COLUMN poll_results.skipped IS 'Domains and accounts that vanished between listing and reading';
COMMENT ON COLUMN poll_results.skipped_items IS 'The skipped items with their reasons, as a JSON array';
COMMENT ON COLUMN poll_results.usage_source IS 'Where usage came from: webadmin, cli, mixed, or none for a server without accounts';
COMMENT ON COLUMN poll_results.webadmin_error IS 'Why the WebAdmin feed was not used although enabled';

CREATE INDEX poll_results_server_started_idx ON poll_results (server_id, started_at DESC);
CREATE INDEX poll_results_run_id_idx ON poll_results (run_id);
