/*
 * wardgate's nginx module: the per-request work wardgate used to do in Lua or with OpenSSL.
 *
 *   wardgate_duplicate_headers <default> [name=action ...];   (http, server, location)
 *       What to do with a request header sent more than once: allow (pass every copy),
 *       reject (400, $wg_decision = "duplicate-header"), first or last (the backend gets one
 *       copy, at the first copy's place, with the first or the last value). <default> covers
 *       every name not listed except "cookie". Runs first in the preaccess phase: after the
 *       rewrite phase (wardgate's `if` checks), before ModSecurity's request-body phase and
 *       limit_req. Names must be lower case. "off" turns an inherited setting off.
 *
 *   $wardgate_request_id
 *       32 hex characters, unique (not secret): a random 64-bit prefix per worker process,
 *       then a per-process counter through a 64-bit bijective mix, so ids look random (split_clients
 *       hashes them) without a random-number call per request.
 *
 *   $wardgate_escaped_request_uri
 *       $request_uri escaped as a URI component (everything but letters, digits and -._~), to put
 *       the request's URL into a query parameter (externalAuth's signin redirect). nginx has no
 *       such variable; ingress-nginx used set-misc's set_escape_uri, which Debian doesn't ship.
 *
 *   $wardgate_upgrade, $wardgate_connection
 *       The request's Upgrade header (its first copy), and "upgrade" when it has one, else "":
 *       what a backend gets as Upgrade and Connection (WebSockets). $http_upgrade scans every
 *       header line by name, and a map on it hashes the value: 0.6k instructions per request.
 *
 *   wardgate_request_checks host [ambiguous_paths] | off;   (http, server)
 *       Refuses a request with 400 before any location (first thing in the server-rewrite
 *       phase), $wg_decision "invalid-request" when a Host header names another host than the
 *       one nginx routed on ($host: case, a trailing dot and a port don't count), or
 *       "ambiguous-path" when the raw path (before any `?`) holds `;`, `\`, `#`, %2e, %2f, %5c
 *       or a `.`/`..` segment. As `if`s with a chain of regex maps this was 1.9k instructions
 *       per request and one `if` block (a location's worth of configuration) per server.
 *
 *   wardgate_decision, wardgate_log_json, wardgate_alias, wardgate_empty   (http)
 *       Variables defined by directive: ngx_http_wardgate_vars.c.
 *
 * Built against Debian's nginx-dev (1.22.1) by scripts/build-module.sh; see docs/architecture.md.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/random.h>

#include "ngx_http_wardgate_module.h"


#define WG_ALLOW   0
#define WG_REJECT  1
#define WG_FIRST   2
#define WG_LAST    3
#define WG_OFF     4

/* header counts up to this use stack memory and pairwise compares; more (rare) are sorted in
 * the request pool */
#define WG_STACK_HEADERS  32


typedef struct {
    ngx_str_t     name;      /* lower case */
    ngx_uint_t    action;
} wg_dup_name_t;


typedef struct {
    ngx_int_t     dup_default;    /* WG_*, or NGX_CONF_UNSET */
    ngx_array_t  *dup_names;      /* of wg_dup_name_t */
    ngx_int_t     decision_index; /* $wg_decision */
    ngx_int_t     checks;         /* WG_CHECK_*, or NGX_CONF_UNSET */
    ngx_int_t     checks_decision;
} wg_loc_conf_t;


typedef struct {
    ngx_table_elt_t  *h;
    ngx_uint_t        first;      /* index of the first header with this name */
    ngx_uint_t        last;       /* for a first header: index of the last one */
    ngx_uint_t        count;      /* for a first header: how many */
} wg_hdr_t;


static ngx_int_t wg_add_variables(ngx_conf_t *cf);
static ngx_int_t wg_init(ngx_conf_t *cf);
static ngx_int_t wg_init_process(ngx_cycle_t *cycle);
static void *wg_create_loc_conf(ngx_conf_t *cf);
static char *wg_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *wg_duplicate_headers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *wg_request_checks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


static ngx_command_t  wg_commands[] = {

    { ngx_string("wardgate_duplicate_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      wg_duplicate_headers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wardgate_request_checks"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      wg_request_checks,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wardgate_decision"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      wg_decision,
      0,
      0,
      NULL },

    { ngx_string("wardgate_log_json"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      wg_log_json,
      0,
      0,
      NULL },

    { ngx_string("wardgate_empty"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      wg_empty,
      0,
      0,
      NULL },

    { ngx_string("wardgate_alias"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      wg_alias,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  wg_module_ctx = {
    wg_add_variables,              /* preconfiguration */
    wg_init,                       /* postconfiguration */
    NULL, NULL,                    /* main conf */
    NULL, NULL,                    /* server conf */
    wg_create_loc_conf,
    wg_merge_loc_conf
};


ngx_module_t  ngx_http_wardgate_module = {
    NGX_MODULE_V1,
    &wg_module_ctx,
    wg_commands,
    NGX_HTTP_MODULE,
    NULL,                          /* init master */
    NULL,                          /* init module */
    wg_init_process,
    NULL, NULL, NULL, NULL,
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  wg_decision_var = ngx_string("wg_decision");
static ngx_str_t  wg_decision_dup = ngx_string("duplicate-header");


/* --- request id ------------------------------------------------------------------------- */

static uint64_t   wg_id_prefix;
static u_char     wg_id_prefix_hex[16];
static uint64_t   wg_id_key;
static uint64_t   wg_id_counter;
static ngx_pid_t  wg_id_pid = -1;


static void
wg_id_seed(void)
{
    uint64_t    seed[2];
    ngx_uint_t  i;

    /* one random read per process; if getrandom fails, fall back to what differs anyway */
    if (getrandom(seed, sizeof(seed), 0) != (ssize_t) sizeof(seed)) {
        seed[0] = ((uint64_t) ngx_pid << 32) ^ (uint64_t) ngx_time() ^ (uint64_t) ngx_random();
        seed[1] = ((uint64_t) ngx_random() << 31) ^ (uint64_t) ngx_random() ^ (uintptr_t) &seed;
    }

    wg_id_prefix = seed[0];

    for (i = 0; i < 16; i++) {
        wg_id_prefix_hex[i] = "0123456789abcdef"[(seed[0] >> (60 - 4 * i)) & 0xf];
    }
    wg_id_key = seed[1];
    wg_id_counter = 0;
    wg_id_pid = ngx_pid;
}


static ngx_int_t
wg_init_process(ngx_cycle_t *cycle)
{
    wg_id_seed();
    return NGX_OK;
}


/* SplitMix64's finaliser: a bijection on 64 bits, so distinct counters give distinct ids */
static uint64_t
wg_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


static ngx_int_t
wg_request_id_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    static u_char  hex[] = "0123456789abcdef";
    u_char        *p;
    uint64_t       n;
    ngx_uint_t     i;

    if (wg_id_pid != ngx_pid) {
        /* a process that did not run init_process (e.g. forked otherwise) */
        wg_id_seed();
    }

    p = ngx_pnalloc(r->pool, 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* the process's prefix, written once at seeding, then the mixed counter */
    ngx_memcpy(p, wg_id_prefix_hex, 16);
    n = wg_mix(wg_id_key + wg_id_counter++);

    for (i = 32; i > 16; i--) {
        p[i - 1] = hex[n & 0xf];
        n >>= 4;
    }

    v->len = 32;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/* --- Upgrade ------------------------------------------------------------------------------ */

static ngx_int_t
wg_upgrade_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_table_elt_t  *h = r->headers_in.upgrade;

    /* hash 0: a header line another module removed */
    if (h == NULL || h->hash == 0 || h->value.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    if (data) {
        v->len = sizeof("upgrade") - 1;
        v->data = (u_char *) "upgrade";

    } else {
        v->len = h->value.len;
        v->data = h->value.data;
    }

    return NGX_OK;
}


/* data: 1 for $wardgate_connection */
static ngx_http_variable_t  wg_upgrade_vars[] = {
    { ngx_string("wardgate_upgrade"), NULL, wg_upgrade_variable, 0, 0, 0 },
    { ngx_string("wardgate_connection"), NULL, wg_upgrade_variable, 1, 0, 0 },
    { ngx_null_string, NULL, NULL, 0, 0, 0 }
};


/* --- checks before any location ---------------------------------------------------------- */

static ngx_str_t  wg_ambiguous_path = ngx_string("ambiguous-path");
static ngx_str_t  wg_invalid_request = ngx_string("invalid-request");


/* the raw path (before any '?') holds ';', '\', '#', %2e, %2f, %5c or a "." or ".." segment */
static ngx_uint_t
wg_ambiguous(u_char *p, u_char *end)
{
    u_char  c;

    for ( /* void */ ; p < end && *p != '?'; p++) {
        c = *p;

        if (c == ';' || c == '\\' || c == '#') {
            return 1;
        }

        if (c == '%' && end - p >= 3) {
            if ((p[1] == '2' && (p[2] == 'e' || p[2] == 'E' || p[2] == 'f' || p[2] == 'F'))
                || (p[1] == '5' && (p[2] == 'c' || p[2] == 'C')))
            {
                return 1;
            }
        }

        if (c == '/' && end - p >= 2 && p[1] == '.') {
            c = (end - p >= 3) ? p[2] : '\0';

            if (c == '.') {
                c = (end - p >= 4) ? p[3] : '\0';
            }

            /* the segment ends: at the end, or at '/', '?' or '#' */
            if (c == '\0' || c == '/' || c == '?' || c == '#') {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * A Host header naming another host than nginx routed on: equal to $host (already lower case,
 * without port and trailing dot) but for case, one trailing dot and ':' with digits.
 */
static ngx_uint_t
wg_host_mismatch(ngx_http_request_t *r)
{
    ngx_str_t                  *host;
    ngx_table_elt_t            *h;
    ngx_http_core_srv_conf_t   *cscf;
    u_char                     *p, *end;

    h = r->headers_in.host;

    if (h == NULL || h->value.len == 0) {
        return 0;
    }

    host = &r->headers_in.server;

    if (host->len == 0) {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
        host = &cscf->server_name;
    }

    /* $host is lower case, and so is nearly every Host header: compare bytes first */
    if (h->value.len < host->len
        || (ngx_memcmp(h->value.data, host->data, host->len) != 0
            && ngx_strncasecmp(h->value.data, host->data, host->len) != 0))
    {
        return 1;
    }

    p = h->value.data + host->len;
    end = h->value.data + h->value.len;

    if (p < end && *p == '.') {
        p++;
    }

    if (p < end && *p == ':') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) { /* void */ }
    }

    return p != end;
}


#define WG_CHECK_HOST   1
#define WG_CHECK_PATHS  2


static ngx_int_t
wg_checks_handler(ngx_http_request_t *r)
{
    wg_loc_conf_t              *conf;
    ngx_str_t                  *why;
    ngx_http_variable_value_t  *vv;

    conf = ngx_http_get_module_loc_conf(r, ngx_http_wardgate_module);

    /* a subrequest's main request passed already */
    if (conf->checks == NGX_CONF_UNSET || conf->checks == 0 || r != r->main) {
        return NGX_DECLINED;
    }

    if ((conf->checks & WG_CHECK_PATHS) && r->unparsed_uri.data != NULL
        && wg_ambiguous(r->unparsed_uri.data, r->unparsed_uri.data + r->unparsed_uri.len))
    {
        why = &wg_ambiguous_path;

    } else if ((conf->checks & WG_CHECK_HOST) && wg_host_mismatch(r)) {
        why = &wg_invalid_request;

    } else {
        return NGX_DECLINED;
    }

    vv = &r->variables[conf->checks_decision];
    vv->data = why->data;
    vv->len = why->len;
    vv->valid = 1;
    vv->no_cacheable = 0;
    vv->not_found = 0;

    return NGX_HTTP_BAD_REQUEST;
}


static char *
wg_request_checks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    wg_loc_conf_t  *lcf = conf;
    ngx_str_t      *value = cf->args->elts;
    ngx_uint_t      i;

    if (lcf->checks != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->checks = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 4 && ngx_strncmp(value[i].data, "host", 4) == 0) {
            lcf->checks |= WG_CHECK_HOST;

        } else if (value[i].len == 15 && ngx_strncmp(value[i].data, "ambiguous_paths", 15) == 0) {
            lcf->checks |= WG_CHECK_PATHS;

        } else if (!(value[i].len == 3 && ngx_strncmp(value[i].data, "off", 3) == 0
                     && cf->args->nelts == 2))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid check \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    lcf->checks_decision = ngx_http_get_variable_index(cf, &wg_decision_var);
    if (lcf->checks_decision == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
wg_escaped_request_uri_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char     *p;
    ngx_str_t  *uri;
    uintptr_t   n;

    uri = &r->main->unparsed_uri;
    n = ngx_escape_uri(NULL, uri->data, uri->len, NGX_ESCAPE_URI_COMPONENT);

    p = ngx_pnalloc(r->pool, uri->len + 2 * n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (n) {
        ngx_escape_uri(p, uri->data, uri->len, NGX_ESCAPE_URI_COMPONENT);
    } else {
        ngx_memcpy(p, uri->data, uri->len);
    }

    v->len = uri->len + 2 * n;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
wg_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;
    ngx_str_t             id = ngx_string("wardgate_request_id");
    ngx_str_t             escaped = ngx_string("wardgate_escaped_request_uri");

    var = ngx_http_add_variable(cf, &id, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = wg_request_id_variable;

    var = ngx_http_add_variable(cf, &escaped, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = wg_escaped_request_uri_variable;

    for (v = wg_upgrade_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, 0);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* --- duplicate headers ------------------------------------------------------------------ */

static ngx_uint_t
wg_action(wg_loc_conf_t *conf, ngx_table_elt_t *h)
{
    wg_dup_name_t  *names;
    ngx_uint_t      i;

    if (conf->dup_names != NULL) {
        names = conf->dup_names->elts;
        for (i = 0; i < conf->dup_names->nelts; i++) {
            if (names[i].name.len == h->key.len
                && ngx_memcmp(names[i].name.data, h->lowcase_key, h->key.len) == 0)
            {
                return names[i].action;
            }
        }
    }

    if (h->key.len == 6 && ngx_memcmp(h->lowcase_key, "cookie", 6) == 0) {
        return WG_ALLOW;
    }

    return (ngx_uint_t) conf->dup_default;
}


/*
 * Drops the headers marked in `drop` from the list without moving the others (other code holds
 * pointers to them): each part is cut into the runs of kept headers, as lua-nginx-module does.
 * No part is left empty (nginx's list loops assume none is). The list's part size is lowered to
 * the last run's length, so a later ngx_list_push starts a new part instead of writing past a
 * run that now begins inside an array.
 */
static ngx_int_t
wg_drop_headers(ngx_http_request_t *r, ngx_list_t *list, wg_hdr_t *hs, ngx_uint_t n,
    u_char *drop)
{
    ngx_list_part_t  *part, *runs, *prev;
    ngx_table_elt_t  *elts;
    ngx_uint_t        i, k, nruns, start, in_run;

    runs = ngx_palloc(r->pool, n * sizeof(ngx_list_part_t));
    if (runs == NULL) {
        return NGX_ERROR;
    }

    nruns = 0;
    k = 0;

    for (part = &list->part; part != NULL; part = part->next) {
        elts = part->elts;
        in_run = 0;
        start = 0;

        for (i = 0; i < part->nelts; i++, k++) {
            if (k >= n || hs[k].h != &elts[i]) {
                return NGX_ERROR;  /* the list changed under us: refuse to guess */
            }

            if (drop[k] != 1 && !in_run) {
                in_run = 1;
                start = i;

            } else if (drop[k] == 1 && in_run) {
                in_run = 0;
                runs[nruns].elts = &elts[start];
                runs[nruns].nelts = i - start;
                nruns++;
            }
        }

        if (in_run) {
            runs[nruns].elts = &elts[start];
            runs[nruns].nelts = part->nelts - start;
            nruns++;
        }
    }

    if (nruns == 0 || k != n) {
        return NGX_ERROR;
    }

    /* the first run lives in the list's embedded part; the others in pool memory (runs[]) */
    list->part.elts = runs[0].elts;
    list->part.nelts = runs[0].nelts;
    prev = &list->part;

    for (i = 1; i < nruns; i++) {
        prev->next = &runs[i];
        prev = &runs[i];
    }

    prev->next = NULL;
    list->last = prev;
    list->nalloc = prev->nelts;

    return NGX_OK;
}


/* keeps, of a multi-line header's pointer array (Cookie, X-Forwarded-For), only `keep` */
static void
wg_reset_multi(ngx_array_t *a, ngx_table_elt_t *keep)
{
    ngx_table_elt_t  **e;

    if (a->nelts > 0 && a->elts != NULL) {
        e = a->elts;
        e[0] = keep;
        a->nelts = 1;
    }
}


static int
wg_cmp_name(const void *pa, const void *pb)
{
    const wg_hdr_t  *a = *(wg_hdr_t * const *) pa;
    const wg_hdr_t  *b = *(wg_hdr_t * const *) pb;
    int              rc;

    if (a->h->key.len != b->h->key.len) {
        return a->h->key.len < b->h->key.len ? -1 : 1;
    }

    rc = ngx_memcmp(a->h->lowcase_key, b->h->lowcase_key, a->h->key.len);
    if (rc != 0) {
        return rc;
    }

    /* same name: keep the request's order (the array holds them in that order) */
    return a < b ? -1 : (a > b ? 1 : 0);
}


static ngx_inline ngx_uint_t
wg_same_name(ngx_table_elt_t *a, ngx_table_elt_t *b)
{
    return a->key.len == b->key.len
           && ngx_memcmp(a->lowcase_key, b->lowcase_key, a->key.len) == 0;
}


/*
 * Sets first/last/count of every header; returns whether any name repeats. Few headers (the
 * common case) are compared pairwise; many are sorted, so a crafted request with thousands of
 * header lines costs O(n log n), not O(n^2).
 */
static ngx_int_t
wg_group(ngx_http_request_t *r, wg_hdr_t *hs, ngx_uint_t n, ngx_uint_t *found)
{
    wg_hdr_t   **sorted;
    ngx_uint_t   i, j, f;

    *found = 0;

    if (n <= WG_STACK_HEADERS) {
        for (i = 1; i < n; i++) {
            for (j = 0; j < i; j++) {
                if (hs[j].first == j && wg_same_name(hs[j].h, hs[i].h)) {
                    hs[i].first = j;
                    hs[j].last = i;
                    hs[j].count++;
                    *found = 1;
                    break;
                }
            }
        }
        return NGX_OK;
    }

    sorted = ngx_palloc(r->pool, n * sizeof(wg_hdr_t *));
    if (sorted == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        sorted[i] = &hs[i];
    }

    qsort(sorted, n, sizeof(wg_hdr_t *), wg_cmp_name);

    for (i = 1; i < n; i++) {
        if (wg_same_name(sorted[i - 1]->h, sorted[i]->h)) {
            f = sorted[i - 1]->first;
            sorted[i]->first = f;
            hs[f].last = sorted[i] - hs;
            hs[f].count++;
            *found = 1;
        }
    }

    return NGX_OK;
}


static ngx_int_t
wg_duplicate_handler(ngx_http_request_t *r)
{
    wg_loc_conf_t              *conf;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *elts, *h;
    ngx_http_variable_value_t  *vv;
    wg_hdr_t                   *hs, stack_hs[WG_STACK_HEADERS];
    u_char                     *drop, stack_drop[WG_STACK_HEADERS];
    ngx_uint_t                  n, i, j, act, found, dropped;

    conf = ngx_http_get_module_loc_conf(r, ngx_http_wardgate_module);

    if (conf->dup_default == NGX_CONF_UNSET || conf->dup_default == WG_OFF
        || r != r->main)
    {
        return NGX_DECLINED;
    }

    n = 0;
    for (part = &r->headers_in.headers.part; part != NULL; part = part->next) {
        n += part->nelts;
    }

    if (n < 2) {
        return NGX_DECLINED;
    }

    if (n <= WG_STACK_HEADERS) {
        hs = stack_hs;
        drop = stack_drop;

    } else {
        hs = ngx_palloc(r->pool, n * (sizeof(wg_hdr_t) + 1));
        if (hs == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        drop = (u_char *) (hs + n);
    }

    i = 0;
    for (part = &r->headers_in.headers.part; part != NULL; part = part->next) {
        elts = part->elts;
        for (j = 0; j < part->nelts; j++, i++) {
            hs[i].h = &elts[j];
            hs[i].first = i;
            hs[i].last = i;
            hs[i].count = 1;
        }
    }

    if (wg_group(r, hs, n, &found) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!found) {
        return NGX_DECLINED;
    }

    /* a Reject anywhere refuses the request before anything is changed */
    for (i = 0; i < n; i++) {
        if (hs[i].first == i && hs[i].count > 1
            && wg_action(conf, hs[i].h) == WG_REJECT)
        {
            vv = &r->variables[conf->decision_index];
            vv->data = wg_decision_dup.data;
            vv->len = wg_decision_dup.len;
            vv->valid = 1;
            vv->no_cacheable = 0;
            vv->not_found = 0;

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "wardgate: duplicate header \"%V\" rejected", &hs[i].h->key);
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    /* drop[first] = 2: this name keeps one copy; then drop[other copies] = 1 */
    ngx_memzero(drop, n);
    dropped = 0;

    for (i = 0; i < n; i++) {
        if (hs[i].first != i || hs[i].count < 2) {
            continue;
        }

        act = wg_action(conf, hs[i].h);
        if (act != WG_FIRST && act != WG_LAST) {
            continue;
        }

        drop[i] = 2;
        dropped = 1;
        h = hs[i].h;

        if (act == WG_LAST) {
            h->value = hs[hs[i].last].h->value;
        }

        /* what nginx derived from the copies it parsed, as if only the kept one came */
        if (h->key.len == 6 && ngx_memcmp(h->lowcase_key, "cookie", 6) == 0) {
            wg_reset_multi(&r->headers_in.cookies, h);

#if (NGX_HTTP_X_FORWARDED_FOR)
        } else if (h->key.len == 15
                   && ngx_memcmp(h->lowcase_key, "x-forwarded-for", 15) == 0)
        {
            wg_reset_multi(&r->headers_in.x_forwarded_for, h);
#endif

        } else if (h->key.len == 10
                   && ngx_memcmp(h->lowcase_key, "connection", 10) == 0)
        {
            r->headers_in.connection_type = 0;

            if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                                 (u_char *) "close", 5 - 1))
            {
                r->headers_in.connection_type = NGX_HTTP_CONNECTION_CLOSE;
                r->headers_in.keep_alive_n = -1;

            } else if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                                        (u_char *) "keep-alive", 10 - 1))
            {
                r->headers_in.connection_type = NGX_HTTP_CONNECTION_KEEP_ALIVE;
            }
        }
    }

    if (!dropped) {
        return NGX_DECLINED;
    }

    for (i = 0; i < n; i++) {
        if (hs[i].first != i && drop[hs[i].first] == 2) {
            drop[i] = 1;
        }
    }

    if (wg_drop_headers(r, &r->headers_in.headers, hs, n, drop) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/* --- configuration ---------------------------------------------------------------------- */

static ngx_int_t
wg_parse_action(ngx_str_t *s)
{
    if (s->len == 5 && ngx_strncmp(s->data, "allow", 5) == 0) {
        return WG_ALLOW;
    }
    if (s->len == 6 && ngx_strncmp(s->data, "reject", 6) == 0) {
        return WG_REJECT;
    }
    if (s->len == 5 && ngx_strncmp(s->data, "first", 5) == 0) {
        return WG_FIRST;
    }
    if (s->len == 4 && ngx_strncmp(s->data, "last", 4) == 0) {
        return WG_LAST;
    }
    return NGX_ERROR;
}


static char *
wg_duplicate_headers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    wg_loc_conf_t  *lcf = conf;
    ngx_str_t      *value, name, act;
    wg_dup_name_t  *dn;
    ngx_int_t       a;
    ngx_uint_t      i, k;
    u_char         *eq;

    if (lcf->dup_default != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && value[1].len == 3
        && ngx_strncmp(value[1].data, "off", 3) == 0)
    {
        lcf->dup_default = WG_OFF;
        return NGX_CONF_OK;
    }

    a = wg_parse_action(&value[1]);
    if (a == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid default action \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }
    lcf->dup_default = a;

    if (cf->args->nelts > 2) {
        lcf->dup_names = ngx_array_create(cf->pool, cf->args->nelts - 2, sizeof(wg_dup_name_t));
        if (lcf->dup_names == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
        if (eq == NULL || eq == value[i].data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid \"%V\", expected name=action", &value[i]);
            return NGX_CONF_ERROR;
        }

        name.data = value[i].data;
        name.len = eq - value[i].data;
        act.data = eq + 1;
        act.len = value[i].data + value[i].len - act.data;

        for (k = 0; k < name.len; k++) {
            /* lower case, no separators: what nginx's parser gives as lowcase_key */
            if (name.data[k] <= ' ' || name.data[k] >= 0x7f
                || (name.data[k] >= 'A' && name.data[k] <= 'Z'))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid header name in \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        a = wg_parse_action(&act);
        if (a == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid action in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        dn = ngx_array_push(lcf->dup_names);
        if (dn == NULL) {
            return NGX_CONF_ERROR;
        }
        dn->name = name;
        dn->action = a;
    }

    lcf->decision_index = ngx_http_get_variable_index(cf, &wg_decision_var);
    if (lcf->decision_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
wg_create_loc_conf(ngx_conf_t *cf)
{
    wg_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(wg_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->dup_default = NGX_CONF_UNSET;
    conf->dup_names = NULL;
    conf->decision_index = NGX_ERROR;
    conf->checks = NGX_CONF_UNSET;
    conf->checks_decision = NGX_ERROR;

    return conf;
}


static char *
wg_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    wg_loc_conf_t  *prev = parent;
    wg_loc_conf_t  *conf = child;

    if (conf->dup_default == NGX_CONF_UNSET) {
        conf->dup_default = prev->dup_default;
        conf->dup_names = prev->dup_names;
        conf->decision_index = prev->decision_index;
    }

    if (conf->checks == NGX_CONF_UNSET) {
        conf->checks = prev->checks;
        conf->checks_decision = prev->checks_decision;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
wg_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* handlers of a phase run in reverse order of registration: loaded after ModSecurity,
     * this runs before its preaccess handler and before limit_req (a static module) */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = wg_duplicate_handler;

    /* last registered, so it runs before the rewrite module's server-level `if`s */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_SERVER_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = wg_checks_handler;

    return NGX_OK;
}
