-- Counts every change of a dataset's items (upsert, archive, deletion), bumped in the same
-- transaction. Item lists cache their total under it, so paging through a dataset counts its
-- items once, not once per page.
ALTER TABLE datasets ADD COLUMN items_revision bigint NOT NULL DEFAULT 0;
