-- 0006_actor_attachments: observers attached to a conversation (issue 15).
-- 0001 created actor_attachments keyed by (conversation_id, type) but nothing
-- ever wrote it; it becomes the durable list of a conversation's observers:
-- a name unique in the conversation, the strategy that runs it, its trigger
-- and its config. Rows are written by the conversation's actor in the same
-- commit as their actor.attached / actor.detached event, so a conversation
-- reactivated on another node (drain, failover) reloads them. team_id is
-- kept on the row so that every query can name the team.

ALTER TABLE actor_attachments RENAME COLUMN type TO name;
ALTER TABLE actor_attachments ADD COLUMN team_id uuid;
UPDATE actor_attachments a SET team_id = c.team_id FROM conversations c
    WHERE c.id = a.conversation_id;
ALTER TABLE actor_attachments ALTER COLUMN team_id SET NOT NULL;
ALTER TABLE actor_attachments ADD COLUMN strategy text NOT NULL DEFAULT 'echo'
    CHECK (length(strategy) BETWEEN 1 AND 64);
ALTER TABLE actor_attachments ADD COLUMN trigger jsonb NOT NULL
    DEFAULT '{"type": "after_turn"}'::jsonb;
ALTER TABLE actor_attachments ADD CONSTRAINT actor_attachments_name
    CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$' AND name <> 'responder');

-- What an observer says may be kept as a message of its own role.
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_role_check
    CHECK (role IN ('user', 'assistant', 'system', 'tool', 'observer'));
