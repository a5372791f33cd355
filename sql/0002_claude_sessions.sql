-- 0002_claude_sessions: the claude-code strategy's session transcripts.
-- The Claude Code CLI keeps a conversation's session as files under its HOME
-- on the node that ran it; after each completed turn the node exports them
-- (agent_claude_session_export, docs/claude-code.md) and keeps the bundle here,
-- so the conversation's next owner (after a crash or a move) can import it
-- and --resume the session. The session id itself is also in
-- conversations.metadata.claude_code.session_id.

CREATE TABLE claude_sessions (
    conversation_id  uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    team_id          uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    session_id       text NOT NULL CHECK (session_id ~ '^[0-9A-Za-z-]{1,64}$'),
    bundle           bytea NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
