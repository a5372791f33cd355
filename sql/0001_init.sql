-- 0001_init: the whole Bicky schema, version 1.
-- Applied by `bickyctl migrate` inside one transaction; schema_migrations
-- (created by the runner) records it. Every query path of the API has an index.

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 (hex) of a token is stored; the token is shown once at creation.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    token_sha256  text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    prefix        text NOT NULL,               -- first characters, to recognise a token in lists
    name          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_team ON api_tokens (team_id, created_at);

CREATE TABLE worktrees (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    branch      text NOT NULL,
    path        text NOT NULL,
    base_ref    text,
    head        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);
CREATE UNIQUE INDEX worktrees_team_branch ON worktrees (team_id, branch) WHERE removed_at IS NULL;
CREATE INDEX worktrees_team_created ON worktrees (team_id, created_at DESC, id DESC);

CREATE TABLE conversations (
    id             uuid PRIMARY KEY,
    team_id        uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    source         text NOT NULL DEFAULT 'api' CHECK (length(source) BETWEEN 1 AND 64),
    type           text NOT NULL DEFAULT 'chat' CHECK (length(type) BETWEEN 1 AND 64),
    title          text CHECK (length(title) <= 1000),
    strategy       text NOT NULL DEFAULT 'echo',
    worktree_id    uuid REFERENCES worktrees (id),
    status         text NOT NULL DEFAULT 'idle' CHECK (status IN
                       ('idle', 'queued', 'processing', 'waiting_for_permission', 'error', 'archived')),
    on_busy        text NOT NULL DEFAULT 'enqueue' CHECK (on_busy IN ('enqueue', 'reject', 'interrupt')),
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    message_count  integer NOT NULL DEFAULT 0,
    last_msg_seq   bigint NOT NULL DEFAULT 0,   -- highest messages.seq
    last_event_seq bigint NOT NULL DEFAULT 0,   -- highest events.seq
    last_event_id  bigint,                      -- highest events.id
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Listing: newest first, keyset pagination on (created_at, id), optional filters.
CREATE INDEX conversations_team_created ON conversations (team_id, created_at DESC, id DESC);
CREATE INDEX conversations_team_status ON conversations (team_id, status, created_at DESC, id DESC);

CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    team_id          uuid NOT NULL,
    seq              bigint NOT NULL CHECK (seq > 0),
    role             text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content          text NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'streaming', 'completed', 'error', 'cancelled')),
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)             -- gapless per-conversation order; fences a stale owner
);

CREATE TABLE events (
    id               bigserial PRIMARY KEY,    -- global, strictly increasing
    team_id          uuid NOT NULL,
    conversation_id  uuid REFERENCES conversations (id) ON DELETE CASCADE,
    seq              bigint,                   -- per conversation, gapless
    type             text NOT NULL,
    source           jsonb NOT NULL,
    action           jsonb NOT NULL DEFAULT '{}'::jsonb,
    reversible       boolean NOT NULL DEFAULT false,
    reverted_by      bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)
);
CREATE INDEX events_team_id ON events (team_id, id);

CREATE TABLE actor_attachments (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    type             text NOT NULL,
    config           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, type)
);

CREATE TABLE tool_permissions (
    id               uuid PRIMARY KEY,
    team_id          uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id       uuid,
    tool_name        text NOT NULL,
    tool_use_id      text,
    arguments        jsonb NOT NULL DEFAULT '{}'::jsonb,
    description      text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    reason           text,
    updated_input    jsonb,
    decided_at       timestamptz,
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tool_permissions_team_status ON tool_permissions (team_id, status, created_at);
CREATE INDEX tool_permissions_conversation ON tool_permissions (conversation_id, created_at);

CREATE TABLE permission_rules (
    id               uuid PRIMARY KEY,
    team_id          uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    scope            text NOT NULL CHECK (scope IN ('team', 'conversation')),
    conversation_id  uuid REFERENCES conversations (id) ON DELETE CASCADE,
    tool_pattern     text NOT NULL CHECK (length(tool_pattern) BETWEEN 1 AND 200),
    decision         text NOT NULL CHECK (decision IN ('allow', 'deny')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'conversation') = (conversation_id IS NOT NULL))
);
CREATE INDEX permission_rules_team ON permission_rules (team_id, created_at);

-- Cluster membership, written by the active registry.
CREATE TABLE nodes (
    id              text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 63),
    state           text NOT NULL CHECK (state IN ('alive', 'draining', 'dead')),
    router          text NOT NULL,
    pub             text NOT NULL,
    weight          integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 0 AND 64),
    last_heartbeat  timestamptz NOT NULL DEFAULT now(),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The ring epoch survives registry restarts; one row.
CREATE TABLE ring_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch      bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ring_state (singleton, epoch) VALUES (true, 0);

-- Fencing for single activation: a node writes for a conversation only while
-- it holds the row with its own node id and an epoch no older than the row's.
CREATE TABLE conversation_owners (
    conversation_id  uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    node_id          text NOT NULL,
    epoch            bigint NOT NULL,
    claimed_at       timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key: the first answer to (team, key) is replayed for 24 h.
CREATE TABLE idempotency_keys (
    team_id       uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  text NOT NULL,
    status        integer NOT NULL,
    response      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
