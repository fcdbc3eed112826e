-- PostgreSQL twin of sqlite/migrations/0007_token_owner.sql: whose a token is and which
-- client it was issued to.
ALTER TABLE oauth_tokens ADD COLUMN client_id TEXT;
ALTER TABLE oauth_tokens ADD COLUMN account TEXT;
