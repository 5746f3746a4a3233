-- EO image mining (issue 19, helper learn): active-learning sessions over candela.mine_patches
-- (0019_mining.sql). One session per (user, category); every answer kept with who and when
-- (append-only: a patch answered twice keeps both rows, the latest counts); the model's figures
-- after each iteration.
CREATE TABLE candela.mine_sessions (
    id               bigserial PRIMARY KEY,
    username         text NOT NULL,
    category         text NOT NULL CHECK (category ~ '^[A-Za-z][A-Za-z0-9_ -]{0,62}$'),
    search           jsonb NOT NULL DEFAULT '{}'::jsonb,  -- the pool: bbox, start, end, dataset
    example_patch_id bigint REFERENCES candela.mine_patches (id) ON DELETE SET NULL,
    c                double precision NOT NULL,           -- classifier regularisation
    beta             double precision NOT NULL,           -- uncertainty weight of batch selection
    iteration        integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (username, category)
);

CREATE TABLE candela.mine_labels (
    id          bigserial PRIMARY KEY,
    session_id  bigint NOT NULL REFERENCES candela.mine_sessions (id) ON DELETE CASCADE,
    patch_id    bigint NOT NULL REFERENCES candela.mine_patches (id) ON DELETE CASCADE,
    label       text NOT NULL CHECK (label IN ('yes', 'no', 'skip')),
    labelled_by text NOT NULL,
    labelled_at timestamptz NOT NULL DEFAULT now(),
    iteration   integer NOT NULL
);
CREATE INDEX mine_labels_session ON candela.mine_labels (session_id, patch_id, id);

CREATE TABLE candela.mine_iterations (
    session_id    bigint NOT NULL REFERENCES candela.mine_sessions (id) ON DELETE CASCADE,
    iteration     integer NOT NULL,
    n_yes         integer NOT NULL,
    n_no          integer NOT NULL,
    n_skip        integer NOT NULL,
    est_precision real,          -- cross-validated on the labels so far (NULL: too few)
    est_recall    real,
    est_f1        real,
    retrieved     integer,       -- patches of the pool the model puts in the category
    pool          integer NOT NULL,
    batch         bigint[] NOT NULL,  -- the patches asked about next
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, iteration)
);

-- SQL mode: the current answer of each labelled patch, with its session's user and category.
CREATE VIEW candela.mine_v_labels AS
SELECT DISTINCT ON (l.session_id, l.patch_id)
       s.id AS session_id, s.username, s.category, l.patch_id, l.label,
       l.labelled_by, l.labelled_at, l.iteration
FROM candela.mine_labels l JOIN candela.mine_sessions s ON s.id = l.session_id
ORDER BY l.session_id, l.patch_id, l.id DESC;

-- SQL mode: each session's figures after each iteration.
CREATE VIEW candela.mine_v_iterations AS
SELECT s.id AS session_id, s.username, s.category, i.iteration, i.n_yes, i.n_no, i.n_skip,
       i.est_precision, i.est_recall, i.est_f1, i.retrieved, i.pool, i.created_at
FROM candela.mine_iterations i JOIN candela.mine_sessions s ON s.id = i.session_id;

GRANT SELECT ON candela.mine_v_labels, candela.mine_v_iterations TO candela_mine_reader;
