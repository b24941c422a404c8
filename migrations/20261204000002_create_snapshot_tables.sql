-- The current snapshot of each server: its domains and accounts as the last
-- successful poll saw them. A poll replaces a server's rows in one transaction.
CREATE TABLE domains (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (name = lower(name) AND length(name) > 0),
    display_name text,
    status text NOT NULL CHECK (status IN ('enabled', 'disabled')),
    collected_at timestamptz NOT NULL,
    UNIQUE (server_id, name)
);

COMMENT ON TABLE domains IS 'Domains of each server as of its last successful poll';
COMMENT ON COLUMN domains.id IS 'Row identity that accounts refer to';
COMMENT ON COLUMN domains.server_id IS 'Server that hosts the domain; its snapshot goes when the server is deleted';
COMMENT ON COLUMN domains.name IS 'Domain name in lower case, so lookups ignore letter case';
COMMENT ON COLUMN domains.display_name IS 'Domain name as the server spells it, when that differs from name';
COMMENT ON COLUMN domains.status IS 'enabled or disabled; a domain listed only by LIST AllDomains is disabled';
COMMENT ON COLUMN domains.collected_at IS 'When the poll that wrote this row collected the server';

CREATE INDEX domains_name_idx ON domains (name);

CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    domain_id bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    local_part text NOT NULL CHECK (local_part = lower(local_part) AND length(local_part) > 0),
    display_local_part text,
    email text NOT NULL CHECK (email = lower(email)),
    quota_kb bigint CHECK (quota_kb > 0),
    used_kb bigint NOT NULL CHECK (used_kb >= 0),
    message_count bigint CHECK (message_count >= 0),
    usage_source text NOT NULL CHECK (usage_source IN ('webadmin', 'cli')),
    collected_at timestamptz NOT NULL,
    UNIQUE (domain_id, local_part)
);

COMMENT ON TABLE accounts IS 'Mailboxes of each server as of its last successful poll';
COMMENT ON COLUMN accounts.id IS 'Row identity; changes on every poll, so not for use as an external key';
COMMENT ON COLUMN accounts.server_id IS 'Server of the mailbox, kept here so per-server deletes and reports need no join';
COMMENT ON COLUMN accounts.domain_id IS 'Domain row of the mailbox';
COMMENT ON COLUMN accounts.local_part IS 'Part of the address before @, in lower case';
COMMENT ON COLUMN accounts.display_local_part IS 'Local part as the server spells it, when that differs from local_part';
COMMENT ON COLUMN accounts.email IS 'Full address in lower case, for exact case-insensitive lookups';
COMMENT ON COLUMN accounts.quota_kb IS 'Mailbox quota in KB as Axigen reports it; NULL when unlimited (unset or 0)';
COMMENT ON COLUMN accounts.used_kb IS 'Mailbox size in KB; 0 is a real value, never NULL';
COMMENT ON COLUMN accounts.message_count IS 'Messages in the mailbox when the source reports it';
COMMENT ON COLUMN accounts.usage_source IS 'Where used_kb came from: the WebAdmin feed or the CLI registry information';
COMMENT ON COLUMN accounts.collected_at IS 'When the poll that wrote this row collected the server';

CREATE INDEX accounts_server_id_idx ON accounts (server_id);
CREATE INDEX accounts_domain_id_idx ON accounts (domain_id);
CREATE INDEX accounts_email_idx ON accounts (email);
