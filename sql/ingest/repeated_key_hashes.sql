-- The hashes of the keys that a file's checked rows hold more than once (a hash is one integer
-- to compare; a collision only sends a few extra rows down the exact path of stage_file_rows).
-- The hash is computed where it is read, not stored with the classified rows: at 10^8 rows
-- writing it cost 2.6 s of classifying, hashing the typed key again 0.2 s here and nothing in
-- the insert. Most files repeat no key: counting the distinct hashes says so (4.9 s at 10^8
-- rows, on disk), and only a file whose count falls short is searched, by sorting the hashes and
-- comparing neighbours (7.6 s there; grouping them made a hash table of one entry per row, a
-- third slower at 10^7 rows). ${search}: whether to search (load.py asks the count first).
CREATE OR REPLACE TEMP TABLE file_repeated_hashes (__key_hash UBIGINT);

INSERT INTO file_repeated_hashes
SELECT DISTINCT __key_hash FROM (
    SELECT __key_hash, lag(__key_hash) OVER (ORDER BY __key_hash) AS __previous_hash
    FROM (SELECT hash(${key}) AS __key_hash FROM ${classified_rows} WHERE __failed_check IS NULL AND ${search}))
WHERE __key_hash = __previous_hash;
