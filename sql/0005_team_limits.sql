-- 0005_team_limits: per-team limits (issue 12). One row per team that has a
-- limit set with `bickyctl team limits`; a NULL column, or no row, means the
-- default of common/limits.h (docs/bickyctl.md lists them). The node that
-- answers a gateway's `auth` op reads this row with the token, so gateways
-- and nodes learn a team's limits without a query of their own; a change
-- reaches a gateway when its cache entry for the token expires (60 s).

CREATE TABLE team_limits (
    team_id     uuid PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    rate        text CHECK (rate ~ '^[1-9][0-9]{0,8}/[smh]$'),     -- requests per second/minute/hour
    burst       integer CHECK (burst BETWEEN 1 AND 1000000000),    -- token bucket size
    actors      integer CHECK (actors BETWEEN 1 AND 1000000000),   -- resident actors per node
    streams     integer CHECK (streams BETWEEN 1 AND 1000000000),  -- SSE + WebSocket per gateway
    turns       integer CHECK (turns BETWEEN 1 AND 1000000000),    -- running turns per node
    worktrees   integer CHECK (worktrees BETWEEN 1 AND 1000000000),-- active worktrees (cluster)
    strategies  text[] CHECK (cardinality(strategies) BETWEEN 1 AND 64),  -- NULL = every one
    updated_at  timestamptz NOT NULL DEFAULT now()
);
