-- 0003_conversation_fillfactor: room for HOT updates of conversations.
-- Every write set ends with the node's touch (NODE_Q_CONV_TOUCH: counters,
-- last_event_id, updated_at and status). None of those columns is indexed
-- except status, so a touch that leaves status as it was can be a HOT update
-- (no new entry in any of the three indexes) if the row's page has room for
-- the new version. With the default fillfactor (100) pages are filled to the
-- brim and the first touch of every row moved it to another page and inserted
-- it into every index. 90 keeps 10% of each page free for new versions (about
-- three versions of a typical row; pruning reclaims them on the page). It
-- applies to pages filled from now on; `VACUUM FULL conversations` (an
-- exclusive lock) applies it to existing pages at once.
-- status stays indexed (conversations_team_status): conv.list with a status
-- filter needs it for rare statuses (docs/db.md), so a touch that changes the
-- status (a turn starting or ending) is not HOT. docs/performance.md, P1.

ALTER TABLE conversations SET (fillfactor = 90);
