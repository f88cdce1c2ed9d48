-- 0001_init.sql (PostgreSQL) — Tollgate's first schema: virtual keys and their owners, budgets,
-- spend. schema/sqlite/0001_init.sql is the same schema for SQLite; keep the two in step
-- (same tables, columns, defaults and indexes; only the types differ).
--
-- Column names are LiteLLM's (LiteLLM_VerificationToken, LiteLLM_UserTable, …) wherever LiteLLM
-- has the field, so the admin API can answer with LiteLLM's field names and LiteLLM data can be
-- imported. The differences from LiteLLM:
--   * MONEY IS INTEGER MICRO-DOLLARS. spend, max_budget, soft_budget (and every other money
--     column below) hold 1/1,000,000 USD as a 64-bit integer: $1.25 is 1250000. The admin API
--     converts to and from LiteLLM's float dollars at its edge; inside, money is never a float.
--     Amounts inside JSON columns (model_max_budget, model_spend) are micro-dollars too.
--   * LiteLLM's String[] columns (models, teams, …) are JSON arrays.
--   * Timestamps are timestamptz (SQLite: ISO-8601 UTC text); the store returns both as the
--     same text, 'YYYY-MM-DDTHH:MM:SS.sssZ'.
--   * JSON columns are jsonb (SQLite: text checked with json_valid); the store returns parsed
--     JSON values for both.
--   * Table names are Tollgate's own (a LiteLLM database can live beside them).
--   * No foreign keys: LiteLLM keys may name users and teams that have no row; the admin API
--     checks references it cares about.
--   * Every admin write also appends to `changes`, so other instances can drop cached rows.
--
-- Migrations are forward-only: never edit this file once released; add 0002_….sql instead.
-- The migration runner records each file (and its SHA-256) in schema_migrations.

-- Virtual keys (LiteLLM_VerificationToken). The key itself is never stored: token is the
-- SHA-256 of the whole key ("sk-…") as 64 lowercase hex digits.
CREATE TABLE keys (
    token                  TEXT    NOT NULL PRIMARY KEY CHECK (length(token) = 64),
    key_name               TEXT,            -- display form of the key, e.g. 'sk-...AbCd'
    key_alias              TEXT,            -- unique when set
    user_id                TEXT,
    team_id                TEXT,
    organization_id        TEXT,
    budget_id              TEXT,            -- budgets.budget_id, optional
    models                 JSONB   NOT NULL DEFAULT '[]',
    aliases                JSONB   NOT NULL DEFAULT '{}',
    config                 JSONB   NOT NULL DEFAULT '{}',
    permissions            JSONB   NOT NULL DEFAULT '{}',
    metadata               JSONB   NOT NULL DEFAULT '{}',
    spend                  BIGINT  NOT NULL DEFAULT 0,  -- micro-dollars
    max_budget             BIGINT,                      -- micro-dollars; NULL = no limit
    soft_budget            BIGINT,                      -- micro-dollars; alert threshold
    soft_budget_cooldown   BOOLEAN NOT NULL DEFAULT FALSE,
    budget_duration        TEXT,            -- '30s', '10m', '1h', '7d', '1mo'
    budget_reset_at        TIMESTAMPTZ,
    model_max_budget       JSONB   NOT NULL DEFAULT '{}',
    model_spend            JSONB   NOT NULL DEFAULT '{}',
    rpm_limit              BIGINT,
    tpm_limit              BIGINT,
    max_parallel_requests  INTEGER,
    allowed_cache_controls JSONB   NOT NULL DEFAULT '[]',
    allowed_routes         JSONB   NOT NULL DEFAULT '[]',
    expires                TIMESTAMPTZ,     -- NULL = never
    blocked                BOOLEAN NOT NULL DEFAULT FALSE,
    last_active            TIMESTAMPTZ,
    rotation_count         INTEGER NOT NULL DEFAULT 0,
    last_rotation_at       TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by             TEXT,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by             TEXT
);
CREATE UNIQUE INDEX keys_key_alias ON keys (key_alias);
CREATE INDEX keys_user_team ON keys (user_id, team_id);
CREATE INDEX keys_team ON keys (team_id);
CREATE INDEX keys_budget_reset ON keys (budget_reset_at, expires);

-- Internal users (LiteLLM_UserTable).
CREATE TABLE users (
    user_id                TEXT    NOT NULL PRIMARY KEY,
    user_alias             TEXT,
    user_email             TEXT,
    user_role              TEXT,            -- proxy_admin, internal_user, …
    sso_user_id            TEXT,
    team_id                TEXT,
    organization_id        TEXT,
    teams                  JSONB   NOT NULL DEFAULT '[]',
    models                 JSONB   NOT NULL DEFAULT '[]',
    metadata               JSONB   NOT NULL DEFAULT '{}',
    spend                  BIGINT  NOT NULL DEFAULT 0,  -- micro-dollars
    max_budget             BIGINT,                      -- micro-dollars
    soft_budget            BIGINT,                      -- micro-dollars
    budget_duration        TEXT,
    budget_reset_at        TIMESTAMPTZ,
    model_max_budget       JSONB   NOT NULL DEFAULT '{}',
    model_spend            JSONB   NOT NULL DEFAULT '{}',
    rpm_limit              BIGINT,
    tpm_limit              BIGINT,
    max_parallel_requests  INTEGER,
    allowed_cache_controls JSONB   NOT NULL DEFAULT '[]',
    blocked                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_sso_user_id ON users (sso_user_id);
CREATE INDEX users_user_email ON users (user_email);

-- Teams (LiteLLM_TeamTable). A team key's budget is the team's, not its user's.
CREATE TABLE teams (
    team_id                TEXT    NOT NULL PRIMARY KEY,
    team_alias             TEXT,
    organization_id        TEXT,
    admins                 JSONB   NOT NULL DEFAULT '[]',
    members                JSONB   NOT NULL DEFAULT '[]',
    members_with_roles     JSONB   NOT NULL DEFAULT '[]',
    metadata               JSONB   NOT NULL DEFAULT '{}',
    models                 JSONB   NOT NULL DEFAULT '[]',
    spend                  BIGINT  NOT NULL DEFAULT 0,  -- micro-dollars
    max_budget             BIGINT,                      -- micro-dollars
    soft_budget            BIGINT,                      -- micro-dollars
    budget_duration        TEXT,
    budget_reset_at        TIMESTAMPTZ,
    model_max_budget       JSONB   NOT NULL DEFAULT '{}',
    model_spend            JSONB   NOT NULL DEFAULT '{}',
    model_aliases          JSONB   NOT NULL DEFAULT '{}',
    rpm_limit              BIGINT,
    tpm_limit              BIGINT,
    max_parallel_requests  INTEGER,
    blocked                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX teams_organization ON teams (organization_id);
CREATE INDEX teams_team_alias ON teams (team_alias);

-- A user's spend and budget inside one team (LiteLLM_TeamMembership).
CREATE TABLE team_membership (
    user_id                TEXT    NOT NULL,
    team_id                TEXT    NOT NULL,
    spend                  BIGINT  NOT NULL DEFAULT 0,  -- micro-dollars
    budget_id              TEXT,            -- budgets.budget_id: the member's limits
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX team_membership_team ON team_membership (team_id);

-- End users / customers: the `user` field of a request (LiteLLM_EndUserTable).
CREATE TABLE end_users (
    user_id                TEXT    NOT NULL PRIMARY KEY,
    alias                  TEXT,
    spend                  BIGINT  NOT NULL DEFAULT 0,  -- micro-dollars
    allowed_model_region   TEXT,
    default_model          TEXT,
    budget_id              TEXT,
    blocked                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Reusable budgets and limits (LiteLLM_BudgetTable), referenced by budget_id.
CREATE TABLE budgets (
    budget_id              TEXT    NOT NULL PRIMARY KEY,
    max_budget             BIGINT,                      -- micro-dollars
    soft_budget            BIGINT,                      -- micro-dollars
    max_parallel_requests  INTEGER,
    tpm_limit              BIGINT,
    rpm_limit              BIGINT,
    model_max_budget       JSONB   NOT NULL DEFAULT '{}',
    budget_duration        TEXT,
    budget_reset_at        TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by             TEXT,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by             TEXT
);

-- Organizations (LiteLLM_OrganizationTable); their limits live in budgets.
CREATE TABLE organizations (
    organization_id        TEXT    NOT NULL PRIMARY KEY,
    organization_alias     TEXT    NOT NULL,
    budget_id              TEXT,
    metadata               JSONB   NOT NULL DEFAULT '{}',
    models                 JSONB   NOT NULL DEFAULT '[]',
    spend                  BIGINT  NOT NULL DEFAULT 0,  -- micro-dollars
    model_spend            JSONB   NOT NULL DEFAULT '{}',
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by             TEXT,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by             TEXT
);

-- One row per finished request (LiteLLM_SpendLogs). request_id is the primary key so that a
-- record written twice (journal replay after a crash or an outage) is stored once: insert with
-- ON CONFLICT (request_id) DO NOTHING and add to the spend counters only when a row was
-- inserted, in the same transaction. "startTime", "endTime", "completionStartTime" and "user"
-- keep LiteLLM's spelling: always write them double-quoted (PostgreSQL folds case, and user is
-- a reserved word there).
CREATE TABLE spend_logs (
    request_id             TEXT    NOT NULL PRIMARY KEY,
    call_type              TEXT    NOT NULL DEFAULT '',  -- acompletion, aembedding, …
    api_key                TEXT    NOT NULL DEFAULT '',  -- keys.token (hash), '' = master key
    spend                  BIGINT  NOT NULL DEFAULT 0,   -- micro-dollars
    total_tokens           BIGINT  NOT NULL DEFAULT 0,
    prompt_tokens          BIGINT  NOT NULL DEFAULT 0,
    completion_tokens      BIGINT  NOT NULL DEFAULT 0,
    cache_read_input_tokens     BIGINT  NOT NULL DEFAULT 0,
    cache_creation_input_tokens BIGINT  NOT NULL DEFAULT 0,
    "startTime"            TIMESTAMPTZ NOT NULL,
    "endTime"              TIMESTAMPTZ NOT NULL,
    "completionStartTime"  TIMESTAMPTZ,
    request_duration_ms    INTEGER,
    model                  TEXT    NOT NULL DEFAULT '',  -- the upstream model
    model_id               TEXT    DEFAULT '',
    model_group            TEXT    DEFAULT '',           -- the public model_name
    custom_llm_provider    TEXT    DEFAULT '',
    api_base               TEXT    DEFAULT '',
    "user"                 TEXT    DEFAULT '',           -- the key's user_id
    team_id                TEXT,
    organization_id        TEXT,
    end_user               TEXT,
    requester_ip_address   TEXT,
    session_id             TEXT,
    status                 TEXT,                          -- success, failure
    cache_hit              TEXT    DEFAULT '',
    cache_key              TEXT    DEFAULT '',
    metadata               JSONB   DEFAULT '{}',
    request_tags           JSONB   DEFAULT '[]',
    messages               JSONB,
    response               JSONB
);
CREATE INDEX spend_logs_start ON spend_logs ("startTime");
CREATE INDEX spend_logs_api_key ON spend_logs (api_key, "startTime");
CREATE INDEX spend_logs_team ON spend_logs (team_id, "startTime");
CREATE INDEX spend_logs_end_user ON spend_logs (end_user);
CREATE INDEX spend_logs_session ON spend_logs (session_id);

-- Daily rollups, one row per day × key × model × provider (LiteLLM_DailyUserSpend), so that
-- spend reports stay fast at millions of spend_logs rows. Updated in the same transaction as
-- the spend_logs insert it summarises: INSERT … ON CONFLICT (date, api_key, model,
-- custom_llm_provider) DO UPDATE SET spend = daily_spend.spend + excluded.spend, …
-- The key columns are NOT NULL ('' when unknown) so that the conflict target always matches.
CREATE TABLE daily_spend (
    date                   TEXT    NOT NULL,                 -- 'YYYY-MM-DD' (UTC)
    api_key                TEXT    NOT NULL DEFAULT '',
    model                  TEXT    NOT NULL DEFAULT '',
    custom_llm_provider    TEXT    NOT NULL DEFAULT '',
    model_group            TEXT,
    user_id                TEXT,
    team_id                TEXT,
    organization_id        TEXT,
    prompt_tokens          BIGINT  NOT NULL DEFAULT 0,
    completion_tokens      BIGINT  NOT NULL DEFAULT 0,
    cache_read_input_tokens     BIGINT  NOT NULL DEFAULT 0,
    cache_creation_input_tokens BIGINT  NOT NULL DEFAULT 0,
    spend                  BIGINT  NOT NULL DEFAULT 0,       -- micro-dollars
    api_requests           BIGINT  NOT NULL DEFAULT 0,
    successful_requests    BIGINT  NOT NULL DEFAULT 0,
    failed_requests        BIGINT  NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (date, api_key, model, custom_llm_provider)
);
CREATE INDEX daily_spend_user ON daily_spend (user_id, date);
CREATE INDEX daily_spend_team ON daily_spend (team_id, date);
CREATE INDEX daily_spend_key ON daily_spend (api_key, date);
CREATE INDEX daily_spend_model ON daily_spend (model, date);

-- Change feed for cache invalidation across instances. Every admin write appends
-- (kind, id) in its own transaction: kind is 'key' (id = token), 'user', 'team',
-- 'team_membership' (id = 'user_id/team_id'), 'end_user', 'budget', 'organization'.
-- An instance remembers the largest seq it has seen and polls
-- SELECT seq, kind, id FROM changes WHERE seq > $1 ORDER BY seq LIMIT n.
-- Old rows may be deleted (keep at least a few minutes' worth).
-- PostgreSQL hands out seq before commit, so a smaller seq can become visible after a larger
-- one (two admin writes committing in the other order): a poller re-reads a short window below
-- its largest seq (e.g. seq > max_seen - 1000 AND at > now() - 60 s) and treats invalidations
-- as idempotent.
CREATE TABLE changes (
    seq                    BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                   TEXT    NOT NULL,
    id                     TEXT    NOT NULL,
    at                     TIMESTAMPTZ NOT NULL DEFAULT now()
);
