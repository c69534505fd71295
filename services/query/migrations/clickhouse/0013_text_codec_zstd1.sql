-- Inputs and outputs (most of the stored bytes) compressed with ZSTD(1) instead of ZSTD(3): every
-- background merge decompresses and compresses them again, and merges were 35-48 % of the query
-- process's CPU under SDK-like load. On the dev stack, two alternating pairs of 60 s runs: merges
-- 243-253 against 268-398 µs per observation, for parts ~3 % larger (README, Figures). Metadata
-- only: parts already written keep their codec until a merge rewrites them. Rerunnable.
ALTER TABLE observations MODIFY COLUMN input Nullable(String) CODEC(ZSTD(1));
ALTER TABLE observations MODIFY COLUMN output Nullable(String) CODEC(ZSTD(1));
ALTER TABLE traces MODIFY COLUMN input Nullable(String) CODEC(ZSTD(1));
ALTER TABLE traces MODIFY COLUMN output Nullable(String) CODEC(ZSTD(1));
