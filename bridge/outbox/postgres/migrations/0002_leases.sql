-- leases holds named, expiring locks between daemons sharing this database,
-- such as "this daemon polls LMS connection X". A lease is held by owner
-- until expires_at (Unix milliseconds UTC); an expired lease may be taken
-- by anyone.
CREATE TABLE leases (
    name        TEXT   PRIMARY KEY,
    owner       TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
