-- Claims on output keys: two identical runs (same workflow and parameters) never write the same
-- outputs at once; the second is refused while the first holds the claim.
CREATE TABLE candela.run_claims (
    output_key  text PRIMARY KEY,                    -- workflow + hash of the parameters
    dag_id      text NOT NULL,
    run_id      text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

-- Saved watches: an AOI + collection + model compared every N days by the s2_watches DAG.
CREATE TABLE candela.watches (
    name            text PRIMARY KEY,
    collection      text NOT NULL,
    bbox            double precision[] NOT NULL,     -- west, south, east, north (WGS 84)
    tile            text,
    model           text NOT NULL DEFAULT 'cva',
    max_cloud       double precision NOT NULL DEFAULT 100,
    every_days      integer NOT NULL CHECK (every_days >= 1),
    since           date NOT NULL,                   -- first acquisition day watched
    last_run_at     timestamptz,                     -- when the watch last started a run
    last_run_id     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
