-- Request bodies and headers stored compressed (src/storage/payload.rs). NULL: stored as
-- received (every row before this migration); 'zstd-d1': body and headers are zstd frames made
-- with the built-in dictionary. The hash chain covers the decoded bytes, so old rows verify as
-- before and the encoding cannot change what a row says without breaking the chain.
ALTER TABLE events ADD COLUMN payload_encoding TEXT;
