/*
 * main.c — the `tollgate` command.
 *
 *   tollgate --config FILE [--host H] [--port P] [--workers N]   serve
 *   tollgate check-config FILE                                    validate and print (redacted)
 *   tollgate migrate [--config FILE]                              apply database migrations
 *   tollgate import-litellm --from URL [--config FILE] [--dry-run] copy LiteLLM's keys and owners
 *   tollgate --version | --help
 *
 * The port comes from --port, else the PORT environment variable (Railway and similar hosts set
 * it), else the config (tollgate_settings.port), else 4000.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/buf.h"
#include "gateway/config.h"
#include "gateway/import.h"
#include "gateway/server.h"
#include "gateway/store.h"

#define TOLLGATE_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out, "usage: tollgate --config FILE [--host H] [--port P] [--workers N]\n"
                 "       tollgate check-config FILE\n"
                 "       tollgate migrate [--config FILE]\n"
                 "       tollgate import-litellm --from postgresql://... [--config FILE] [--dry-run]\n"
                 "       tollgate --version\n");
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void print_warnings(const gw_config_t *cfg)
{
    ad_buf_t b;
    ad_buf_init(&b, 64 * 1024);
    for (size_t i = 0; i < cfg->n_warnings; i++) {
        ad_buf_reset(&b);
        ad_buf_puts(&b, "{\"level\":\"warn\",\"msg\":\"config\",\"detail\":");
        ad_buf_append_json_str(&b, cfg->warnings[i], strlen(cfg->warnings[i]));
        if (ad_buf_puts(&b, "}\n") == 0)
            fputs(b.data, stderr);
    }
    ad_buf_free(&b);
}

static int check_config(const char *path)
{
    char err[512];
    gw_config_t *cfg = gw_config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    gw_config_dump(cfg, stdout);
    gw_config_free(cfg);
    return 0;
}

/* `tollgate migrate [--config FILE]`: applies pending schema/ migrations to the store the config
 * (or DATABASE_URL / TOLLGATE_DATA_DIR) names, and prints what ran. */
static int migrate(int argc, char **argv)
{
    const char *config = NULL;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            config = argv[++i];
            continue;
        }
        usage(stderr);
        return 2;
    }
    char err[512];
    gw_config_t *cfg = NULL;
    if (config != NULL && (cfg = gw_config_load(config, err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 1;
    json_t *applied = NULL;
    gw_store_t *s = gw_store_open(cfg, NULL, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "migrate: %s\n", err);
        goto out;
    }
    printf("store: %s\n", gw_store_describe(s));
    if (gw_store_migrate(s, &applied, err, sizeof(err)) != GW_STORE_OK) {
        fprintf(stderr, "migrate: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(applied); i++)
        printf("applied %s\n", json_string_value(json_array_get(applied, i)));
    if (json_array_size(applied) == 0)
        printf("schema up to date\n");
    rc = 0;
out:
    json_decref(applied);
    gw_store_close(s);
    gw_config_free(cfg);
    return rc;
}

/* `tollgate import-litellm --from URL [--config FILE] [--dry-run]`: copies a LiteLLM database's
 * keys and their owners into the store `migrate` would use (gateway/import.h). */
static int import_litellm(int argc, char **argv)
{
    const char *config = NULL, *from = NULL;
    int dry_run = 0;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            from = argv[++i];
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (from == NULL) {
        fprintf(stderr, "import-litellm: --from postgresql://... (the LiteLLM database) is required\n");
        return 2;
    }
    char err[1024];
    gw_config_t *cfg = NULL;
    if (config != NULL && (cfg = gw_config_load(config, err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    gw_import_opts_t o = {.from_url = from, .cfg = cfg, .dry_run = dry_run, .out = stdout};
    int rc = gw_import_litellm(&o, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "import-litellm: %s\n", err);
    gw_config_free(cfg);
    return rc != 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *host = NULL, *port_s = NULL, *workers_s = NULL;
    if (argc >= 2 && strcmp(argv[1], "check-config") == 0) {
        if (argc != 3) {
            usage(stderr);
            return 2;
        }
        return check_config(argv[2]);
    }
    if (argc >= 2 && strcmp(argv[1], "migrate") == 0)
        return migrate(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "import-litellm") == 0)
        return import_litellm(argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0 ? &config
                            : strcmp(a, "--host") == 0                         ? &host
                            : strcmp(a, "--port") == 0                         ? &port_s
                            : strcmp(a, "--workers") == 0                      ? &workers_s
                                                                               : NULL;
        if (strcmp(a, "--version") == 0) {
            printf("tollgate %s\n", TOLLGATE_VERSION);
            return 0;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (slot == NULL || i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        *slot = argv[++i];
    }
    if (config == NULL) {
        usage(stderr);
        return 2;
    }
    if (port_s == NULL)
        port_s = getenv("PORT");
    char err[512];
    gw_config_t *cfg = gw_config_load(config, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    print_warnings(cfg);
    long v;
    if (port_s != NULL) {
        if (parse_int(port_s, 1, 65535, &v) != 0) {
            fprintf(stderr, "invalid port: %s\n", port_s);
            return 2;
        }
        cfg->server.port = (int)v;
    }
    if (workers_s != NULL) {
        if (parse_int(workers_s, 0, 256, &v) != 0) {
            fprintf(stderr, "invalid worker count: %s\n", workers_s);
            return 2;
        }
        cfg->server.workers = (int)v;
    }
    if (host != NULL) {
        free(cfg->server.host);
        cfg->server.host = strdup(host);
    }
    if (cfg->master_key == NULL)
        fprintf(stderr, "{\"level\":\"warn\",\"msg\":\"no master key: the API is open to anyone who can "
                        "reach it\"}\n");
    /* Signals are taken with sigwait by the main thread only: block them before any thread
     * exists (the store, spend and limits modules start threads while the server is built), so
     * every thread inherits the mask and a SIGTERM can never hit a default handler. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Each request frees buffers of 16-32 KB (upstream body, stream relay) that merge into the top
     * of the worker's malloc arena; with glibc's default 128 KB trim threshold nearly every
     * request then returned that top to the kernel (madvise) and grew it again on the next one.
     * Trim only past 8 MB of free top. Setting it freezes glibc's sliding mmap threshold, so that
     * one is set to 1 MB here (allocations above it, such as large bodies, are mapped apart). */
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    gw_server_t *s = gw_server_create(cfg, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "%s\n", err);
        gw_config_free(cfg);
        return 1;
    }
    int rc = gw_server_run(s);
    gw_server_destroy(s);
    gw_config_free(cfg);
    curl_global_cleanup();
    return rc;
}
