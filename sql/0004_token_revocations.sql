-- 0004_token_revocations: every gateway hears of a revoked token at once.
-- Gateways cache token checks (60 s). A token whose revoked_at is set, or
-- whose row is deleted (its team too), bumps the one-row counter below and
-- sends NOTIFY bicky_token_revoked '<seq> <token_sha256>' at commit. The
-- active registry LISTENs, publishes each on its PUB (topic "revoked") and
-- puts the counter in every ring publication (revoked_seq), so a gateway that
-- missed a notification sees the gap and flushes its cache (docs/registry.md).
-- The counter is a row, not a sequence: it moves only with the commit of the
-- revocation it counts, and it has no gaps.

CREATE TABLE token_revocations (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO token_revocations (singleton, seq) VALUES (true, 0);

CREATE FUNCTION bicky_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF OLD.revoked_at IS NULL AND (TG_OP = 'DELETE' OR NEW.revoked_at IS NOT NULL) THEN
        UPDATE token_revocations SET seq = seq + 1, updated_at = now() WHERE singleton
            RETURNING seq INTO n;
        PERFORM pg_notify('bicky_token_revoked', n || ' ' || OLD.token_sha256);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_revoked AFTER UPDATE OF revoked_at OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION bicky_token_revoked();
