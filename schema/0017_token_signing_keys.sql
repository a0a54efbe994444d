-- The public halves of the keys that sign access tokens (ADR 0029). Each command API instance
-- registers the key it signs with before it serves, and extends `verify_until` while it runs;
-- every verifier (both APIs, and anyone reading `/.well-known/jwks.json`) accepts a key while
-- `verify_until` is ahead and it is not retired. The private keys never reach the database.
CREATE TABLE token_signing_keys (
    -- RFC 7638 thumbprint of the public key (the JWK `kid`).
    kid             text        PRIMARY KEY,
    algorithm       text        NOT NULL CHECK (algorithm = 'EdDSA'),
    public_key      bytea       NOT NULL CHECK (length(public_key) = 32),
    first_signed_at timestamptz NOT NULL DEFAULT now(),
    last_signed_at  timestamptz NOT NULL DEFAULT now(),
    -- No token signed by the key lives past this: the signer caps `exp` at it.
    verify_until    timestamptz NOT NULL,
    -- Set by an operator who revokes the key: its tokens stop verifying at once.
    retired_at      timestamptz
);
