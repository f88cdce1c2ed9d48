/*
 * import.h — `tollgate import-litellm`: copies a LiteLLM proxy's virtual keys and their owners
 * (LiteLLM_VerificationToken, _UserTable, _TeamTable, _TeamMembership, _EndUserTable,
 * _BudgetTable, _OrganizationTable) from LiteLLM's PostgreSQL database into Tollgate's store, so
 * every existing `sk-…` key keeps working: both store a key as the SHA-256 hex of the key.
 *
 * A CLI command, not the server: it blocks (libpq on the calling thread for the source; the
 * target through gw_store_run). It reads every table in one read-only REPEATABLE READ snapshot,
 * converts the rows (float dollars → integer micro-dollars rounded half up from the exact decimal
 * text, String[] → JSON arrays, timestamps → 'YYYY-MM-DDTHH:MM:SS.sssZ'), then writes them in ONE
 * transaction (all or nothing), upserting by primary key. What a second run does:
 *   - a row that is not in Tollgate is inserted;
 *   - a row in both is updated with LiteLLM's value for every column LiteLLM has, except the
 *     money a row has spent (`spend`), which keeps the larger of the two (Tollgate's own spend
 *     since the first import is never lost); columns only Tollgate has are left alone;
 *   - a row whose converted values already equal Tollgate's is left untouched ("unchanged"), so
 *     running the import twice changes nothing;
 *   - rows only in Tollgate are never deleted.
 * After a write it appends ("all", "") to `changes`, so running instances drop their caches.
 * Tables missing from the source (older LiteLLM versions) are skipped with a note, and missing
 * columns read as NULL (the column's default).
 */
#ifndef GW_IMPORT_H
#define GW_IMPORT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "gateway/config.h"
#include "gateway/store.h"

/** Bytes of a money text accepted by gw_import_money_micro. */
#define GW_IMPORT_MONEY_MAX 400
/** Rows read from one source table at most; more is an error (nothing is written). */
#define GW_IMPORT_MAX_ROWS 10000000

typedef struct gw_import_opts {
    const char *from_url;   /* the LiteLLM database: postgresql://… (Prisma's ?schema= honoured) */
    const gw_config_t *cfg; /* may be NULL: the target store is chosen as `tollgate migrate` does */
    const char *data_dir;   /* NULL: TOLLGATE_DATA_DIR, else ./data (SQLite target) */
    int dry_run;            /* read and compare, write nothing (not even migrations) */
    FILE *out;              /* the summary (stdout) */
} gw_import_opts_t;

/**
 * Runs the import. Returns 0 on success, else non-zero with a message in err (the source's
 * password never appears in it, nor in out).
 */
int gw_import_litellm(const gw_import_opts_t *o, char *err, size_t errlen);

/* ---- conversions (exposed for tests) --------------------------------------------------------- */

/**
 * Converts a decimal text — PostgreSQL's float8 or numeric output: "1.25", "-0.5", "12",
 * "1e-07", "1.5E+3" — from dollars to integer micro-dollars without going through a binary
 * float: the digits are shifted by six places and rounded half up (half away from zero for a
 * negative amount: "0.0000005" → 1, "-0.0000005" → -1). Returns 0, or -1 for anything else
 * (NaN, Infinity, garbage, longer than GW_IMPORT_MONEY_MAX) or an amount past int64.
 */
int gw_import_money_micro(const char *text, int64_t *micro);

/**
 * A PostgreSQL timestamp text ("2024-05-01 12:00:00.123", with an optional "+00:00" offset, as
 * `timestamp` or `timestamptz` print in UTC) → Tollgate's "YYYY-MM-DDTHH:MM:SS.sssZ" in out
 * (sub-millisecond digits truncated). Returns 0; 1 for "infinity"/"-infinity" (no time: the
 * caller stores NULL, e.g. a key that never expires); -1 when text is not a timestamp.
 */
int gw_import_time_text(const char *text, char out[GW_STORE_TIME_LEN]);

/**
 * A LiteLLM String[] (as to_jsonb gives it) or Json list → a new JSON array (caller decrefs):
 * an array is copied, NULL / JSON null / an empty object (`{}`, LiteLLM's default for
 * members_with_roles) give [], a string holding a JSON array is parsed. Returns NULL for any
 * other value.
 */
json_t *gw_import_json_array(const json_t *v);

#endif
