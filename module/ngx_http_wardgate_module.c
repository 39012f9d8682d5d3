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
 *   wardgate_decision $out $decision $waf;   (http)
 *       $out: what the decision log says. $decision when a check set it; else "rate-limit" when
 *       limit_req refused the request; else "allow" when a backend was tried; else from the
 *       status nginx answered with: 200 "direct-response" (only direct responses answer 200
 *       themselves), 400 "invalid-request", 403 "waf" when $waf is "on" or "cap", 413
 *       "request-limits" ($waf "" or "on": nginx's body limit) or "waf-body-limit" ($waf "cap":
 *       ModSecurity's, where nginx has none); anything else "allow".
 *
 *   wardgate_empty $name ...;   (http)
 *       Variables that are empty until `set` (or Lua) gives them a value in the request: what
 *       `map "" $name { default ""; }` gives, without a map's evaluation when nothing set it.
 *
 *   wardgate_alias $name $variable;   (http)
 *       $name has $variable's value: what `map "" $name { default $variable; }` gives without
 *       a map's key and value evaluation (0.4k instructions per request each).
 *
 *   wardgate_log_json $out name=$var|name:$var ...;   (http)
 *       $out: one JSON object, the fields in this order; `=` writes the value as a string
 *       (escaped as log_format's escape=json does), `:` as a number (`null` when it is not
 *       one). $status, $body_bytes_sent and $request_time are numbers, the others strings. nginx's own log_format with escape=json and these
 *       variables cost 8k instructions per request (each variable fetched, escaped twice,
 *       maps and the upstream variables formatted into pool memory); a few built-in variables
 *       are read here straight from the request, the others through nginx's variables.
 *
 * Built against Debian's nginx-dev (1.22.1) by scripts/build-module.sh; see docs/architecture.md.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/random.h>


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
static char *wg_decision(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *wg_log_json(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *wg_alias(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *wg_request_checks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *wg_empty(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


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
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
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


/* --- the decision log -------------------------------------------------------------------- */

typedef struct {
    ngx_int_t   decision;       /* $decision: set by the checks */
    ngx_int_t   waf;            /* $waf: "on", "cap" or "" */
    ngx_int_t   limit_req;      /* $limit_req_status */
} wg_decision_conf_t;


static ngx_str_t  wg_d_allow = ngx_string("allow");
static ngx_str_t  wg_d_rate_limit = ngx_string("rate-limit");
static ngx_str_t  wg_d_direct = ngx_string("direct-response");
static ngx_str_t  wg_d_waf = ngx_string("waf");
static ngx_str_t  wg_d_request_limits = ngx_string("request-limits");
static ngx_str_t  wg_d_waf_body_limit = ngx_string("waf-body-limit");


static ngx_inline ngx_uint_t
wg_value_is(ngx_http_variable_value_t *vv, const char *s, size_t len)
{
    if (vv == NULL || vv->not_found) {
        return len == 0;
    }

    return vv->len == len && ngx_strncmp(vv->data, s, len) == 0;
}


static ngx_int_t
wg_decision_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    wg_decision_conf_t         *dc = (wg_decision_conf_t *) data;
    ngx_http_variable_value_t  *vv;
    ngx_str_t                  *d;
    ngx_uint_t                  status;

    vv = ngx_http_get_indexed_variable(r, dc->decision);

    if (vv != NULL && !vv->not_found && vv->len) {
        *v = *vv;
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    d = &wg_d_allow;

    if (wg_value_is(ngx_http_get_indexed_variable(r, dc->limit_req), "REJECTED", 8)) {
        d = &wg_d_rate_limit;

    } else if (r->upstream_states != NULL && r->upstream_states->nelts > 0) {
        /* a backend (or the attempt to reach one) answered */

    } else if (status == NGX_HTTP_OK) {
        d = &wg_d_direct;

    } else if (status == NGX_HTTP_BAD_REQUEST) {
        d = &wg_invalid_request;

    } else if (status == NGX_HTTP_FORBIDDEN) {
        vv = ngx_http_get_indexed_variable(r, dc->waf);
        if (wg_value_is(vv, "on", 2) || wg_value_is(vv, "cap", 3)) {
            d = &wg_d_waf;
        }

    } else if (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        vv = ngx_http_get_indexed_variable(r, dc->waf);
        if (wg_value_is(vv, "", 0) || wg_value_is(vv, "on", 2)) {
            d = &wg_d_request_limits;

        } else if (wg_value_is(vv, "cap", 3)) {
            d = &wg_d_waf_body_limit;
        }
    }

    v->len = d->len;
    v->data = d->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* a variable this module defines by a directive: `$name`, not defined yet */
static ngx_http_variable_t *
wg_define_variable(ngx_conf_t *cf, ngx_str_t *arg, ngx_uint_t flags)
{
    ngx_str_t             name;
    ngx_http_variable_t  *var;

    if (arg->len < 2 || arg->data[0] != '$') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid variable name \"%V\"", arg);
        return NULL;
    }

    name.data = arg->data + 1;
    name.len = arg->len - 1;

    var = ngx_http_add_variable(cf, &name, flags);
    if (var == NULL) {
        return NULL;
    }

    if (var->get_handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "variable \"%V\" is already defined", arg);
        return NULL;
    }

    return var;
}


static ngx_int_t
wg_variable_index(ngx_conf_t *cf, ngx_str_t *arg)
{
    ngx_str_t  name;

    if (arg->len < 2 || arg->data[0] != '$') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid variable name \"%V\"", arg);
        return NGX_ERROR;
    }

    name.data = arg->data + 1;
    name.len = arg->len - 1;

    return ngx_http_get_variable_index(cf, &name);
}


static char *
wg_decision(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t            *value = cf->args->elts;
    ngx_str_t             lr = ngx_string("$limit_req_status");
    ngx_http_variable_t  *var;
    wg_decision_conf_t   *dc;

    dc = ngx_pcalloc(cf->pool, sizeof(wg_decision_conf_t));
    if (dc == NULL) {
        return NGX_CONF_ERROR;
    }

    var = wg_define_variable(cf, &value[1], NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_CONF_ERROR;
    }

    dc->decision = wg_variable_index(cf, &value[2]);
    dc->waf = wg_variable_index(cf, &value[3]);
    dc->limit_req = wg_variable_index(cf, &lr);

    if (dc->decision == NGX_ERROR || dc->waf == NGX_ERROR || dc->limit_req == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    var->get_handler = wg_decision_variable;
    var->data = (uintptr_t) dc;

    return NGX_CONF_OK;
}


/* --- aliases ------------------------------------------------------------------------------ */

static ngx_int_t
wg_alias_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_variable_value_t  *vv;

    vv = ngx_http_get_flushed_variable(r, (ngx_uint_t) data);

    if (vv == NULL) {
        return NGX_ERROR;
    }

    *v = *vv;

    return NGX_OK;
}


static ngx_int_t
wg_empty_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    v->len = 0;
    v->data = (u_char *) "";
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static char *
wg_empty(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t            *value = cf->args->elts;
    ngx_http_variable_t  *var;
    ngx_uint_t            i;

    for (i = 1; i < cf->args->nelts; i++) {
        /* changeable: `set` and Lua write it */
        var = wg_define_variable(cf, &value[i], NGX_HTTP_VAR_CHANGEABLE);
        if (var == NULL) {
            return NGX_CONF_ERROR;
        }

        var->get_handler = wg_empty_variable;

        /* indexed, so a value set in the request is kept in it */
        if (wg_variable_index(cf, &value[i]) == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
wg_alias(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t            *value = cf->args->elts;
    ngx_http_variable_t  *var;
    ngx_int_t             index;

    var = wg_define_variable(cf, &value[1], 0);
    if (var == NULL) {
        return NGX_CONF_ERROR;
    }

    index = wg_variable_index(cf, &value[2]);
    if (index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    var->get_handler = wg_alias_variable;
    var->data = (uintptr_t) index;

    return NGX_CONF_OK;
}


/* --- the decision log's JSON line -------------------------------------------------------- */

#define WG_LOG_MAX_FIELDS  32

/* where a field's value comes from: nginx's variable, or the request itself */
#define WG_F_VAR              0
#define WG_F_OWN_VAR          1     /* a variable of this module: needs no escaping */
#define WG_F_TIME_ISO8601     2
#define WG_F_REMOTE_ADDR      3
#define WG_F_HOST             4
#define WG_F_METHOD           5
#define WG_F_REQUEST_URI      6
#define WG_F_STATUS           7
#define WG_F_BODY_BYTES_SENT  8
#define WG_F_REQUEST_TIME     9
#define WG_F_UPSTREAM_ADDR    10
#define WG_F_UPSTREAM_STATUS  11
#define WG_F_UPSTREAM_TIME    12

/* the built-in sources whose values are numbers (the others are strings) */
#define wg_numeric_source(s)                                                                  \
    ((s) == WG_F_STATUS || (s) == WG_F_BODY_BYTES_SENT || (s) == WG_F_REQUEST_TIME)


typedef struct {
    /* what comes before the value: '{' or the previous string's closing quote and ',', then
     * "name":, then a string's opening quote */
    ngx_str_t   prefix;
    ngx_uint_t  source;         /* WG_F_* */
    ngx_int_t   index;          /* the variable (WG_F_VAR, WG_F_OWN_VAR, $host without Host) */
    ngx_uint_t  string;         /* name=$var, not name:$var */
} wg_log_field_t;


typedef struct {
    wg_log_field_t  *fields;
    ngx_uint_t       nfields;
    ngx_str_t        suffix;    /* the last string's closing quote, and '}' */
    size_t           room;      /* the prefixes and the suffix */
} wg_log_conf_t;


/* variables read from the request: the same text nginx's (or this module's) variables give */
static struct {
    ngx_str_t   name;
    ngx_uint_t  source;
} wg_log_sources[] = {
    { ngx_string("wardgate_request_id"), WG_F_OWN_VAR },
    { ngx_string("time_iso8601"), WG_F_TIME_ISO8601 },
    { ngx_string("remote_addr"), WG_F_REMOTE_ADDR },
    { ngx_string("host"), WG_F_HOST },
    { ngx_string("request_method"), WG_F_METHOD },
    { ngx_string("request_uri"), WG_F_REQUEST_URI },
    { ngx_string("status"), WG_F_STATUS },
    { ngx_string("body_bytes_sent"), WG_F_BODY_BYTES_SENT },
    { ngx_string("request_time"), WG_F_REQUEST_TIME },
    { ngx_string("upstream_addr"), WG_F_UPSTREAM_ADDR },
    { ngx_string("upstream_status"), WG_F_UPSTREAM_STATUS },
    { ngx_string("upstream_response_time"), WG_F_UPSTREAM_TIME },
    { ngx_null_string, 0 }
};


typedef struct {
    u_char   *data;
    size_t    len;
    size_t    extra;            /* what escaping adds; 0: copied as it is */
} wg_log_value_t;


/*
 * Whether `len` bytes need no JSON escaping: no '"', '\' or control character (bytes from 0x80
 * pass as they are, as with log_format's escape=json). Eight bytes at a time: the "has a byte
 * below n" and "has a zero byte" word tests, exact as yes/no answers.
 */
static ngx_inline ngx_uint_t
wg_json_word_clean(uint64_t x)
{
    uint64_t  q = x ^ 0x2222222222222222ULL, b = x ^ 0x5c5c5c5c5c5c5c5cULL;

    return !((((x - 0x2020202020202020ULL) & ~x) | ((q - 0x0101010101010101ULL) & ~q)
              | ((b - 0x0101010101010101ULL) & ~b)) & 0x8080808080808080ULL);
}


static ngx_inline ngx_uint_t
wg_json_clean(u_char *p, size_t len)
{
    uint64_t  x;

    if (len < 8) {
        x = 0x2020202020202020ULL;  /* spaces need no escaping */
        ngx_memcpy(&x, p, len);
        return wg_json_word_clean(x);
    }

    for ( /* void */ ; len > 8; p += 8, len -= 8) {
        ngx_memcpy(&x, p, 8);
        if (!wg_json_word_clean(x)) {
            return 0;
        }
    }

    /* the last 8 bytes, overlapping what was tested already */
    ngx_memcpy(&x, p + len - 8, 8);
    return wg_json_word_clean(x);
}


/* what escaping adds to `len` bytes (0: nothing to escape) */
static ngx_inline size_t
wg_json_extra(u_char *p, size_t len)
{
    return wg_json_clean(p, len) ? 0 : (size_t) ngx_escape_json(NULL, p, len);
}


/* a copy for the short pieces of a log line, without a call to memcpy for up to 32 bytes */
static ngx_inline u_char *
wg_copy(u_char *dst, u_char *src, size_t n)
{
    uint64_t  a, b, c, d;
    uint32_t  e, g;

    if (n >= 8 && n <= 16) {
        ngx_memcpy(&a, src, 8);
        ngx_memcpy(&b, src + n - 8, 8);
        ngx_memcpy(dst, &a, 8);
        ngx_memcpy(dst + n - 8, &b, 8);
        return dst + n;
    }

    if (n > 16 && n <= 32) {
        ngx_memcpy(&a, src, 8);
        ngx_memcpy(&b, src + 8, 8);
        ngx_memcpy(&c, src + n - 16, 8);
        ngx_memcpy(&d, src + n - 8, 8);
        ngx_memcpy(dst, &a, 8);
        ngx_memcpy(dst + 8, &b, 8);
        ngx_memcpy(dst + n - 16, &c, 8);
        ngx_memcpy(dst + n - 8, &d, 8);
        return dst + n;
    }

    if (n >= 4 && n < 8) {
        ngx_memcpy(&e, src, 4);
        ngx_memcpy(&g, src + n - 4, 4);
        ngx_memcpy(dst, &e, 4);
        ngx_memcpy(dst + n - 4, &g, 4);
        return dst + n;
    }

    if (n < 4) {
        while (n--) {
            *dst++ = *src++;
        }
        return dst;
    }

    return ngx_cpymem(dst, src, n);
}


/* decimal, at least `min` digits: what ngx_sprintf's %ui, %O and %03ui write, a tenth the cost */
static u_char *
wg_uint(u_char *p, uint64_t n, size_t min)
{
    u_char  tmp[NGX_INT64_LEN], *t = tmp + NGX_INT64_LEN;

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    while ((size_t) (tmp + NGX_INT64_LEN - t) < min) {
        *--t = '0';
    }

    while (t < tmp + NGX_INT64_LEN) {
        *p++ = *t++;
    }

    return p;
}


/* milliseconds as seconds with three decimals ("%T.%03M") */
static ngx_inline u_char *
wg_msec(u_char *p, ngx_msec_int_t ms)
{
    ms = ngx_max(ms, 0);
    p = wg_uint(p, (uint64_t) ms / 1000, 1);
    *p++ = '.';
    return wg_uint(p, (uint64_t) ms % 1000, 3);
}


/* nginx's $upstream_addr, $upstream_status or $upstream_response_time, JSON-escaped, at p */
static u_char *
wg_upstream_list(ngx_http_request_t *r, u_char *p, ngx_uint_t source)
{
    ngx_http_upstream_state_t  *state = r->upstream_states->elts;
    ngx_uint_t                  i = 0, n = r->upstream_states->nelts;
    ngx_msec_int_t              ms;
    ngx_str_t                  *peer;

    for ( ;; ) {
        if (source == WG_F_UPSTREAM_ADDR) {
            peer = state[i].peer;

            if (peer != NULL) {
                p = wg_json_clean(peer->data, peer->len)
                    ? wg_copy(p, peer->data, peer->len)
                    : (u_char *) ngx_escape_json(p, peer->data, peer->len);
            }

        } else if (source == WG_F_UPSTREAM_STATUS) {
            if (state[i].status) {
                p = wg_uint(p, state[i].status, 1);

            } else {
                *p++ = '-';
            }

        } else {
            ms = state[i].response_time;

            if (ms != -1) {
                p = wg_msec(p, ms);

            } else {
                *p++ = '-';
            }
        }

        if (++i == n) {
            return p;
        }

        /* the same separators as nginx: ", " between tries, " : " where another upstream
         * (an internal redirect) starts; such an entry has no peer and is skipped */
        if (state[i].peer) {
            *p++ = ',';
            *p++ = ' ';

        } else {
            *p++ = ' ';
            *p++ = ':';
            *p++ = ' ';

            if (++i == n) {
                return p;
            }
        }
    }
}


static size_t
wg_upstream_room(ngx_http_request_t *r, ngx_uint_t source)
{
    ngx_http_upstream_state_t  *state = r->upstream_states->elts;
    ngx_uint_t                  i, n = r->upstream_states->nelts;
    size_t                      len = 0;

    for (i = 0; i < n; i++) {
        if (source == WG_F_UPSTREAM_ADDR) {
            len += 3 + (state[i].peer ? state[i].peer->len * 6 : 0);

        } else {
            len += 3 + NGX_INT64_LEN + 4;
        }
    }

    return len;
}


static ngx_inline ngx_uint_t
wg_numeric(u_char *p, size_t len)
{
    if (len == 0) {
        return 0;
    }

    for ( /* void */ ; len; p++, len--) {
        if ((*p < '0' || *p > '9') && *p != '.' && *p != '-') {
            return 0;
        }
    }

    return 1;
}


#define WG_LOG_SCRATCH  256


static ngx_int_t
wg_log_json_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
{
    wg_log_conf_t              *lc = (wg_log_conf_t *) data;
    wg_log_field_t             *f, *last;
    wg_log_value_t              vals[WG_LOG_MAX_FIELDS], *val;
    ngx_http_variable_value_t  *vv;
    ngx_time_t                 *tp;
    off_t                       sent;
    size_t                      len, room;
    u_char                     *p, *start, *s;
    u_char                      scratch[WG_LOG_SCRATCH], *sp;

    /* first every value (numbers and upstream lists written into scratch), then the line */
    len = lc->room;
    last = lc->fields + lc->nfields;
    sp = scratch;

    for (f = lc->fields, val = vals; f < last; f++, val++) {
        val->extra = 0;

        switch (f->source) {

        case WG_F_TIME_ISO8601:
            val->data = ngx_cached_http_log_iso8601.data;
            val->len = ngx_cached_http_log_iso8601.len;
            break;

        /* checked by nginx: an address it formatted, a method of A-Z, '_' and '-' */
        case WG_F_REMOTE_ADDR:
            val->data = r->connection->addr_text.data;
            val->len = r->connection->addr_text.len;
            break;

        case WG_F_METHOD:
            val->data = r->main->method_name.data;
            val->len = val->data ? r->main->method_name.len : 0;
            break;

        case WG_F_REQUEST_URI:
            val->data = r->unparsed_uri.data;
            val->len = val->data ? r->unparsed_uri.len : 0;
            val->extra = wg_json_extra(val->data, val->len);
            break;

        case WG_F_STATUS:
            val->data = sp;
            sp = wg_uint(sp, r->err_status ? r->err_status
                             : (r->headers_out.status ? r->headers_out.status
                                : (r->http_version == NGX_HTTP_VERSION_9 ? 9 : 0)), 3);
            val->len = sp - val->data;
            break;

        case WG_F_BODY_BYTES_SENT:
            sent = r->connection->sent - (off_t) r->header_size;
            val->data = sp;
            sp = wg_uint(sp, sent > 0 ? (uint64_t) sent : 0, 1);
            val->len = sp - val->data;
            break;

        case WG_F_REQUEST_TIME:
            tp = ngx_timeofday();
            val->data = sp;
            sp = wg_msec(sp, (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                                               + (tp->msec - r->start_msec)));
            val->len = sp - val->data;
            break;

        case WG_F_UPSTREAM_ADDR:
        case WG_F_UPSTREAM_STATUS:
        case WG_F_UPSTREAM_TIME:
            if (r->upstream_states == NULL || r->upstream_states->nelts == 0) {
                val->data = NULL;
                val->len = 0;
                break;
            }

            room = wg_upstream_room(r, f->source);
            s = sp;

            if (room > (size_t) (scratch + WG_LOG_SCRATCH - sp)) {
                s = ngx_pnalloc(r->pool, room);
                if (s == NULL) {
                    return NGX_ERROR;
                }
            }

            val->data = s;
            val->len = wg_upstream_list(r, s, f->source) - s;

            if (s == sp) {
                sp += val->len;
            }

            break;

        case WG_F_HOST:
            if (r->headers_in.server.len) {
                val->data = r->headers_in.server.data;
                val->len = r->headers_in.server.len;
                val->extra = wg_json_extra(val->data, val->len);
                break;
            }

            /* fall through */

        default:
            vv = ngx_http_get_flushed_variable(r, f->index);

            if (vv != NULL && !vv->not_found) {
                val->data = vv->data;
                val->len = vv->len;

            } else {
                val->data = NULL;
                val->len = 0;
            }

            if (!f->string) {
                if (!wg_numeric(val->data, val->len)) {
                    val->data = (u_char *) "null";
                    val->len = 4;
                }

            } else if (f->source != WG_F_OWN_VAR) {
                val->extra = wg_json_extra(val->data, val->len);
            }
        }

        len += val->len + val->extra;
    }

    start = ngx_pnalloc(r->pool, len);
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start;

    for (f = lc->fields, val = vals; f < last; f++, val++) {
        p = wg_copy(p, f->prefix.data, f->prefix.len);
        p = val->extra ? (u_char *) ngx_escape_json(p, val->data, val->len)
                       : wg_copy(p, val->data, val->len);
    }

    p = wg_copy(p, lc->suffix.data, lc->suffix.len);

    v->data = start;
    v->len = p - start;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static char *
wg_log_json(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t            *value = cf->args->elts;
    ngx_str_t             name, var;
    ngx_http_variable_t  *out;
    wg_log_conf_t        *lc;
    wg_log_field_t       *f;
    ngx_uint_t            i, k, quoted;
    u_char               *sep, *p, c;

    if (cf->args->nelts - 2 > WG_LOG_MAX_FIELDS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "more than %d fields", WG_LOG_MAX_FIELDS);
        return NGX_CONF_ERROR;
    }

    out = wg_define_variable(cf, &value[1], NGX_HTTP_VAR_NOCACHEABLE);
    if (out == NULL) {
        return NGX_CONF_ERROR;
    }

    lc = ngx_pcalloc(cf->pool, sizeof(wg_log_conf_t));
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    lc->nfields = cf->args->nelts - 2;
    lc->fields = ngx_pcalloc(cf->pool, lc->nfields * sizeof(wg_log_field_t));
    if (lc->fields == NULL) {
        return NGX_CONF_ERROR;
    }

    quoted = 0;  /* whether the previous value was a string */

    for (i = 0; i < lc->nfields; i++) {
        f = &lc->fields[i];

        for (sep = value[i + 2].data; sep < value[i + 2].data + value[i + 2].len; sep++) {
            if (*sep == '=' || *sep == ':') {
                break;
            }
        }

        name.data = value[i + 2].data;
        name.len = sep - name.data;

        if (name.len == 0 || sep == value[i + 2].data + value[i + 2].len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid field \"%V\", expected name=$variable or name:$variable",
                               &value[i + 2]);
            return NGX_CONF_ERROR;
        }

        /* the name is written into JSON as it is: letters, digits and '_' only */
        for (k = 0; k < name.len; k++) {
            c = name.data[k];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid field name in \"%V\"", &value[i + 2]);
                return NGX_CONF_ERROR;
            }
        }

        f->string = (*sep == '=');
        var.data = sep + 1;
        var.len = value[i + 2].data + value[i + 2].len - var.data;

        f->index = wg_variable_index(cf, &var);
        if (f->index == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        f->source = WG_F_VAR;
        for (k = 0; wg_log_sources[k].name.len; k++) {
            if (wg_log_sources[k].name.len == var.len - 1
                && ngx_strncmp(wg_log_sources[k].name.data, var.data + 1, var.len - 1) == 0)
            {
                f->source = wg_log_sources[k].source;
                break;
            }
        }

        /* these are always numbers, the others read from the request always strings */
        if (f->source != WG_F_VAR && f->source != WG_F_OWN_VAR
            && f->string == wg_numeric_source(f->source))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &value[i + 2],
                               f->string ? "a number: write name:$variable"
                                         : "a string: write name=$variable");
            return NGX_CONF_ERROR;
        }

        f->prefix.len = (quoted ? 2 : 1) + name.len + sizeof("\"\":") - 1 + (f->string ? 1 : 0);
        f->prefix.data = ngx_pnalloc(cf->pool, f->prefix.len);
        if (f->prefix.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = f->prefix.data;

        if (i == 0) {
            *p++ = '{';

        } else {
            if (quoted) {
                *p++ = '"';
            }
            *p++ = ',';
        }

        *p++ = '"';
        p = ngx_cpymem(p, name.data, name.len);
        *p++ = '"';
        *p++ = ':';

        if (f->string) {
            *p++ = '"';
        }

        lc->room += f->prefix.len;
        quoted = f->string;
    }

    lc->suffix.len = quoted ? 2 : 1;
    lc->suffix.data = (u_char *) (quoted ? "\"}" : "}");
    lc->room += lc->suffix.len;

    out->get_handler = wg_log_json_variable;
    out->data = (uintptr_t) lc;

    return NGX_CONF_OK;
}


static ngx_int_t
wg_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;
    ngx_str_t             name = ngx_string("wardgate_request_id");

    var = ngx_http_add_variable(cf, &name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = wg_request_id_variable;

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
