-- leases holds named, expiring locks, such as "this daemon polls LMS
-- connection X". A lease is held by owner until expires_at (Unix
-- milliseconds UTC); an expired lease may be taken by anyone. SQLite serves
-- one daemon, but keeping the table here gives both backends one contract.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL
);
