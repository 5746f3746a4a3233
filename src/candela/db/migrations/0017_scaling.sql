-- The elastic cluster (issue 17): every autoscaler decision and what came of it, and what the
-- policies remember between passes (cooldowns, back-off, since when each node is empty).
-- Numbered 0017 (the issue) so that parallel branches adding 0005.. do not collide.
CREATE TABLE candela.scaling_decisions (
    id          bigserial PRIMARY KEY,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    mode        text NOT NULL CHECK (mode IN ('plan', 'act')),
    policy      text NOT NULL,
    node_group  text NOT NULL,
    action      text NOT NULL CHECK (action IN ('scale_up', 'scale_down', 'none')),
    count       integer NOT NULL DEFAULT 0,
    nodes       text[] NOT NULL DEFAULT '{}',
    why         text NOT NULL,
    inputs      jsonb NOT NULL DEFAULT '{}',
    outcome     text NOT NULL,                   -- planned | done | partial | failed | error | none
    detail      jsonb NOT NULL DEFAULT '[]'      -- per node: created/removed/failed, errors
);
CREATE INDEX scaling_decisions_at ON candela.scaling_decisions (decided_at DESC);

CREATE TABLE candela.scaling_state (
    name        text PRIMARY KEY,                -- 'memory'
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
