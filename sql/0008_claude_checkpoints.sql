-- 0008_claude_checkpoints: a claude-code turn's transcript is kept while it runs.
-- While the CLI works, its node exports the session after each completed step
-- (a tool result, or the start of the next model call) and stores it in
-- claude_sessions with turn_message_id = the running turn's user message: a
-- checkpoint. If the node is lost, the conversation's next owner sees that the
-- stored transcript belongs to the turn that was running and resumes the
-- session from it (docs/claude-code.md, "A running turn across a node loss").
-- A turn's end stores the final transcript with turn_message_id NULL.

ALTER TABLE claude_sessions ADD COLUMN turn_message_id uuid;
