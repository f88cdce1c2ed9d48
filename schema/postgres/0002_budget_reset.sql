-- 0002_budget_reset.sql (PostgreSQL) — indexes for the budget reset job (gateway/budgets.h), which
-- looks every second for rows whose budget period ended: WHERE budget_reset_at <= now. keys
-- already has keys_budget_reset (budget_reset_at, expires). schema/sqlite/0002_budget_reset.sql
-- is the same for SQLite; keep the two in step.
CREATE INDEX users_budget_reset ON users (budget_reset_at);
CREATE INDEX teams_budget_reset ON teams (budget_reset_at);
CREATE INDEX budgets_budget_reset ON budgets (budget_reset_at);
-- the rows a budget's reset zeroes (organizations are few and read by id; no index)
CREATE INDEX end_users_budget ON end_users (budget_id);
CREATE INDEX team_membership_budget ON team_membership (budget_id);
