-- 0009_legacy_mirror: which conversations `bickyctl import --follow URL`
-- mirrors, and from which old server (issue 14). The follower writes a row for
-- each conversation it upserts; when an interaction is gone from that old
-- server (its GET /interactions no longer lists it, or GET /interactions/:id
-- answers 404), the follower archives the conversation, and only one of its
-- own: conversations created through the API or imported from a file are
-- never touched (docs/bickyctl.md, "import --follow URL").

CREATE TABLE legacy_mirror (
    conversation_id  uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    team_id          uuid NOT NULL,
    source_url       text NOT NULL,              -- the --follow URL, as given
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX legacy_mirror_source ON legacy_mirror (team_id, source_url);
