/*
 * wardgate's nginx module: variables defined by directive (see ngx_http_wardgate_module.c for
 * the rest).
 *
 *   wardgate_decision $out $decision $waf [status=decision ...];   (http)
 *       $out: what the decision log says. $decision when a check set it; else "concurrency" when
 *       limit_conn refused the request; else "rate-limit" when limit_req refused it; else "allow" when a backend was tried; else from the
 *       status nginx answered with: 403 "waf" when $waf is "on" or "cap", 413 "request-limits"
 *       ($waf "" or "on": nginx's body limit) or "waf-body-limit" ($waf "cap": ModSecurity's,
 *       where nginx has none), another status as the arguments say (render/accesslog.py: 200
 *       "direct-response", 400 "invalid-request", 401 "auth" and 404 "no-route" where some
 *       place answers them itself); anything else "allow". A chain of maps
 *       doing this cost 2.9k instructions per request.
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
 *       one). $status, $body_bytes_sent and $request_time are numbers, the others strings.
 *       nginx's own log_format with escape=json and these variables cost 8k instructions per
 *       request (each variable fetched, escaped twice, the upstream lists and numbers formatted
 *       into pool memory); the request's own fields are read here straight from the request,
 *       the others through nginx's variables.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_wardgate_module.h"


/* --- the decision log -------------------------------------------------------------------- */

#define WG_DECISION_STATUSES  8

typedef struct {
    ngx_int_t   decision;       /* $decision: set by the checks */
    ngx_int_t   waf;            /* $waf: "on", "cap" or "" */
    ngx_int_t   limit_req;      /* $limit_req_status */
    ngx_int_t   limit_conn;     /* $limit_conn_status */
    ngx_uint_t  nstatuses;      /* status=decision arguments: answers no backend gave */
    ngx_uint_t  statuses[WG_DECISION_STATUSES];
    ngx_str_t   decisions[WG_DECISION_STATUSES];
} wg_decision_conf_t;


static ngx_str_t  wg_d_allow = ngx_string("allow");
static ngx_str_t  wg_d_rate_limit = ngx_string("rate-limit");
static ngx_str_t  wg_d_concurrency = ngx_string("concurrency");
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
    ngx_uint_t                  status, i;

    vv = ngx_http_get_indexed_variable(r, dc->decision);

    if (vv != NULL && !vv->not_found && vv->len) {
        *v = *vv;
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    d = &wg_d_allow;

    if (wg_value_is(ngx_http_get_indexed_variable(r, dc->limit_conn), "REJECTED", 8)) {
        d = &wg_d_concurrency;

    } else if (wg_value_is(ngx_http_get_indexed_variable(r, dc->limit_req), "REJECTED", 8)) {
        d = &wg_d_rate_limit;

    } else if (r->upstream_states != NULL && r->upstream_states->nelts > 0) {
        /* a backend (or the attempt to reach one) answered */

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

    } else {
        for (i = 0; i < dc->nstatuses; i++) {
            if (dc->statuses[i] == status) {
                d = &dc->decisions[i];
                break;
            }
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


char *
wg_decision(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t            *value = cf->args->elts;
    ngx_str_t             lr = ngx_string("$limit_req_status");
    ngx_str_t             lc = ngx_string("$limit_conn_status");
    ngx_http_variable_t  *var;
    wg_decision_conf_t   *dc;
    ngx_int_t             status;
    ngx_uint_t            i;
    u_char               *eq;

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
    dc->limit_conn = wg_variable_index(cf, &lc);

    if (dc->decision == NGX_ERROR || dc->waf == NGX_ERROR || dc->limit_req == NGX_ERROR
        || dc->limit_conn == NGX_ERROR)
    {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts - 4 > WG_DECISION_STATUSES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "more than %d statuses", WG_DECISION_STATUSES);
        return NGX_CONF_ERROR;
    }

    for (i = 4; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
        status = eq ? ngx_atoi(value[i].data, eq - value[i].data) : NGX_ERROR;

        if (status < 100 || status > 599 || status == NGX_HTTP_FORBIDDEN
            || status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE || eq + 1 == value[i].data + value[i].len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\", expected status=decision (not 403 or 413)", &value[i]);
            return NGX_CONF_ERROR;
        }

        dc->statuses[dc->nstatuses] = (ngx_uint_t) status;
        dc->decisions[dc->nstatuses].data = eq + 1;
        dc->decisions[dc->nstatuses].len = value[i].data + value[i].len - (eq + 1);
        dc->nstatuses++;
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


char *
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


char *
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

    if (len == 0) {
        return 1;
    }

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


char *
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
