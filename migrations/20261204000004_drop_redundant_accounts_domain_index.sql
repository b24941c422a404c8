-- The unique key on accounts (domain_id, local_part) begins with domain_id,
-- so it already serves lookups by domain_id and the cascade from domains.
-- The separate index on domain_id alone only added work to every snapshot
-- write, which inserts each server's accounts anew on every poll.
DROP INDEX accounts_domain_id_idx;
