-- Every poll inserts each server's accounts anew, so each index and each
-- foreign-key check on accounts costs time on every row of every poll.
--
-- The row identity column is dropped: nothing reads it, it changes on every
-- poll, and its sequence and index cost work on every insert. The unique
-- key (domain_id, local_part) becomes the primary key.
ALTER TABLE accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE accounts DROP COLUMN id;
ALTER TABLE accounts
    DROP CONSTRAINT accounts_domain_id_local_part_key,
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (domain_id, local_part);

-- Two foreign keys, one to servers and one to domains, become one to
-- domains on (server_id, id). It checks each row once instead of twice, and
-- it also makes sure that an account's server is the server of its domain.
-- Deleting a server still removes its accounts, through its domains.
ALTER TABLE domains ADD CONSTRAINT domains_server_id_id_key UNIQUE (server_id, id);
ALTER TABLE accounts
    DROP CONSTRAINT accounts_server_id_fkey,
    DROP CONSTRAINT accounts_domain_id_fkey,
    ADD CONSTRAINT accounts_domain_fkey FOREIGN KEY (server_id, domain_id)
        REFERENCES domains (server_id, id) ON DELETE CASCADE;

COMMENT ON CONSTRAINT accounts_domain_fkey ON accounts IS
    'The account''s domain, on the same server; deleting the domain or its server deletes the account';
