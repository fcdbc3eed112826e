-- Whose a token is and which client it was issued to: the Twitch viewer login's token works
-- on GQL only with its own client id, and `status`/`check-config` name the account.
ALTER TABLE oauth_tokens ADD COLUMN client_id TEXT;
ALTER TABLE oauth_tokens ADD COLUMN account TEXT;
