-- wardgate request checks (request limits, duplicate headers, rate limit), run by
-- rewrite_by_lua_block at the end of nginx's rewrite phase: after wardgate's `if`
-- checks, before ModSecurity decides in its request-body phase.
--
-- Loaded once from init_by_lua_block, pasted verbatim inside "(function() ... end)()",
-- so this chunk must stay plain Lua 5.1 / LuaJIT, end with "return M", and keep
-- to constructs nginx's *_by_lua_block reader accepts (balanced braces outside
-- strings and comments; tested with nginx 1.22.1 + lua-nginx-module 0.10.23).
--
--   M.configure({ [id] = policy, ... })   -- init phase; validates, precomputes
--   M.access(id)                          -- per request; may end the request
--   M.run()                               -- per request (the http-level entry): the checks of
--                                            the policy the serving place named in $wg_lua
--
-- policy (every key optional, nil = that check is off):
--   max_url = N           414 when #$request_uri > N
--   max_header_bytes = N  431 when the header lines (name: value CRLF each, no
--                         request line, no final empty line) exceed N bytes
--   dup = { default = "allow"|"reject"|"first"|"last",
--           headers = { ["x-foo"] = "reject"|"first"|"last"|"allow" } }
--                         reject: 400; first/last: keep one value for the backend.
--                         default covers every unlisted header except cookie.
--   rl = { bucket = "b3", limit = N, period = 1|60|3600, burst = B,
--          key = "ip"|"header"|"route", header = "x-api-key",
--          status = 429, headers = false, exempt_var = "wg_rlx3",
--          dict = "wg_ratelimit" }
--
-- On rejection $wg_decision is set ("request-limits", "duplicate-header",
-- "rate-limit") and the request ends with ngx.exit(status).

local M = {}

local ngx = ngx
local ngx_var = ngx.var
local ngx_header = ngx.header
local ngx_exit = ngx.exit
local ngx_now = ngx.now
local ngx_log = ngx.log
local ngx_ERR = ngx.ERR
local ngx_md5 = ngx.md5
local ngx_req = ngx.req
local get_headers = ngx_req.get_headers
local set_header = ngx_req.set_header
local clear_header = ngx_req.clear_header
local raw_header = ngx_req.raw_header
local http_version = ngx_req.http_version

local type = type
local pairs = pairs
local pcall = pcall
local error = error
local tostring = tostring
local tonumber = tonumber
local floor = math.floor
local ceil = math.ceil
local str_byte = string.byte

-- Rate-limit times are stored as seconds since EPOCH (a constant, so values kept
-- in the shared dict stay valid across reloads) to keep doubles small and precise.
-- ngx.now() itself is only precise to ~2e-7 s at today's magnitude, so it is
-- rounded to its exact millisecond first.
local EPOCH_MS = 1700000000000
-- extra lifetime of a dict entry past its theoretical arrival time (seconds);
-- the dict API truncates to milliseconds, so this is >= 1 ms after truncation.
local TTL_PAD = 0.002

local ACTIONS = { allow = 0, reject = 1, first = 2, last = 3 }
local ACT_REJECT, ACT_FIRST, ACT_LAST = 1, 2, 3

local compiled = {}

local function set_decision(value)
    ngx_var.wg_decision = value
end

local function reject(status, decision)
    -- pcall: a missing or read-only $wg_decision must not turn a 4xx into a 500
    pcall(set_decision, decision)
    return ngx_exit(status)
end

-- Header lines size --------------------------------------------------------------

local function sum_headers(h)
    local total = 0
    for name, val in pairs(h) do
        local nl = #name + 4          -- ": " and CRLF
        if type(val) == "table" then
            for i = 1, #val do
                total = total + nl + #val[i]
            end
        else
            total = total + nl + #val
        end
    end
    return total
end

-- returns the header bytes and, when it had to read them, the header table
local function header_bytes()
    local v = http_version()
    if v and v < 2 then
        local ok, raw = pcall(raw_header, true)
        if ok and raw then
            -- raw_header(true) ends with the empty line that closes the header
            -- (CRLF, or a bare LF, which nginx also accepts)
            if str_byte(raw, -2) == 13 then
                return #raw - 2
            end
            return #raw - 1
        end
    end
    -- HTTP/2 (raw_header is unsupported there): the decoded fields, as HTTP/1 lines
    local h = get_headers(0)
    return sum_headers(h), h
end

-- Duplicate headers -----------------------------------------------------------------

-- one copy of the header with this value: set_header alone only rewrites the first copy of a
-- header nginx keeps a pointer to (User-Agent, Accept, ...) and leaves the others in place
local function keep_one(name, value)
    clear_header(name)
    set_header(name, value)
end

-- returns true when the request must be rejected
local function check_dup(d, h)
    if not h then
        h = get_headers(0)
    end
    local default = d.default
    if default == 0 then
        -- only listed (non-allow) names matter
        local names, acts = d.names, d.acts
        for i = 1, d.n do
            local val = h[names[i]]
            if type(val) == "table" then
                local act = acts[i]
                if act == ACT_REJECT then
                    return true
                elseif act == ACT_FIRST then
                    keep_one(names[i], val[1])
                else
                    keep_one(names[i], val[#val])
                end
            end
        end
        return false
    end
    local listed = d.listed
    for name, val in pairs(h) do
        if type(val) == "table" then
            local act = listed[name]
            if act == nil and name ~= "cookie" then
                act = default
            end
            if act == ACT_REJECT then
                return true
            elseif act == ACT_FIRST then
                keep_one(name, val[1])
            elseif act == ACT_LAST then
                keep_one(name, val[#val])
            end
        end
    end
    return false
end

-- Rate limit --------------------------------------------------------------------------
--
-- GCRA, equivalent to nginx "limit_req ... burst=B nodelay": T = period / limit,
-- the dict holds the theoretical arrival time TAT; a request at "now" is allowed
-- when max(TAT, now) + T - now <= (B + 1) * T, and then TAT becomes that value.
-- A fresh key admits B + 1 requests at once, then one per T. Rejected requests do
-- not change the state.
--
-- The reservation is one atomic dict:incr(key, T, init = now), so concurrent
-- workers never both take the last slot. Not atomic (may over- or under-admit by
-- about one request, only under concurrent requests for the same key):
--  * the undo incr(key, -T) after a rejection: in between, another worker sees
--    TAT one T too high and may reject a request it could have admitted;
--  * an entry idle past its TAT but not yet expired (TTL padding, < 3 ms) is
--    reset with set(), which can drop a concurrent reservation;
--  * expire() calls from two workers can land out of order, leaving a TTL one T
--    short; the entry then vanishes early and the key looks fresh.
-- Entries expire once their bucket is full again; if the dict runs out of memory
-- nginx evicts least recently used entries, which forgets those clients.

local function rate_limit(rl)
    local xv = rl.exempt_var
    if xv and ngx_var[xv] == "1" then
        return
    end

    local key
    local kt = rl.key_type
    if kt == 3 then
        key = rl.route_key
    else
        if kt == 2 then
            local v = ngx_var[rl.header_var]
            if v and v ~= "" then
                if #v > 64 then
                    v = ngx_md5(v)
                end
                -- "#" keeps header keys apart from client-IP keys
                key = rl.header_prefix .. v
            end
        end
        if not key then
            local ip = ngx_var.wg_client_ip
            if not ip or ip == "" then
                ip = ngx_var.remote_addr
            end
            key = rl.ip_prefix .. ip
        end
    end

    local dict, T, cap, eps = rl.dict, rl.T, rl.cap, rl.eps
    -- the cached event-loop time, like limit_req (no ngx.update_time(): it costs
    -- a syscall-ish 0.1 us and limit_req does not do it either)
    local now = (floor(ngx_now() * 1000 + 0.5) - EPOCH_MS) / 1000
    local tat, err = dict:incr(key, T, now, rl.fresh_ttl)
    if not tat then
        -- fail open: a broken limiter must not take the site down
        ngx_log(ngx_ERR, "wardgate: rate limit dict incr failed: ", err)
        return
    end
    local d = tat - now

    if d > cap + eps then
        dict:incr(key, -T)
        local retry = ceil(d - cap - eps)
        if retry < 1 then
            retry = 1
        end
        ngx_header["Retry-After"] = retry
        if rl.headers then
            local reset = ceil(d - T - eps)
            if reset < 1 then
                reset = 1
            end
            ngx_header["RateLimit-Limit"] = rl.limit_str
            ngx_header["RateLimit-Remaining"] = 0
            ngx_header["RateLimit-Reset"] = reset
        end
        return reject(rl.status, "rate-limit")
    end

    if d < T - eps then
        -- the entry outlived its TAT by the TTL padding: the bucket was full
        d = T
        dict:set(key, now + T, rl.fresh_ttl)
    else
        dict:expire(key, d + TTL_PAD)
    end

    if rl.headers then
        ngx_header["RateLimit-Limit"] = rl.limit_str
        ngx_header["RateLimit-Remaining"] = floor((cap - d) / T + 1e-3)
        local reset = ceil(d - eps)
        if reset < 1 then
            reset = 1
        end
        ngx_header["RateLimit-Reset"] = reset
    end
end

-- Entry point ---------------------------------------------------------------------------

function M.access(id)
    local p = compiled[id]
    if not p then
        return
    end

    local n = p.max_url
    if n and #ngx_var.request_uri > n then
        return reject(414, "request-limits")
    end

    local h
    n = p.max_header_bytes
    if n then
        local size
        size, h = header_bytes()
        if size > n then
            return reject(431, "request-limits")
        end
    end

    local d = p.dup
    if d and check_dup(d, h) then
        return reject(400, "duplicate-header")
    end

    local rl = p.rl
    if rl then
        return rate_limit(rl)
    end
end

-- The one entry point nginx calls (rewrite_by_lua at http level): the place that serves a
-- request names its policy in $wg_lua. (nginx skips it in a location the request leaves by
-- `rewrite ... last`.) Mirror subrequests share the variables of their request: never checked.
function M.run()
    if ngx.is_subrequest then
        return
    end
    local id = ngx_var.wg_lua
    if id and id ~= "" then
        return M.access(tonumber(id))
    end
end

-- Configuration ---------------------------------------------------------------------------

local function positive(id, name, v)
    v = tonumber(v)
    if not v or v <= 0 then
        error("wardgate policy " .. tostring(id) .. ": " .. name .. " must be a positive number", 3)
    end
    return v
end

local function action(id, name, v)
    local a = ACTIONS[v]
    if not a then
        error("wardgate policy " .. tostring(id) .. ": bad duplicate-header action for "
              .. name .. ": " .. tostring(v), 3)
    end
    return a
end

local function compile_dup(id, dup)
    local d = { default = action(id, "default", dup.default or "allow"),
                listed = {}, names = {}, acts = {}, n = 0 }
    for name, act in pairs(dup.headers or {}) do
        name = name:lower()
        local a = action(id, name, act)
        d.listed[name] = a
        if a ~= 0 then
            d.n = d.n + 1
            d.names[d.n] = name
            d.acts[d.n] = a
        end
    end
    if d.default == 0 and d.n == 0 then
        return nil
    end
    return d
end

local KEY_TYPES = { ip = 1, header = 2, route = 3 }

local function compile_rl(id, rl)
    local limit = positive(id, "rl.limit", rl.limit)
    local period = positive(id, "rl.period", rl.period or 1)
    local burst = tonumber(rl.burst or 0)
    if not burst or burst < 0 then
        error("wardgate policy " .. tostring(id) .. ": rl.burst must be >= 0", 2)
    end
    local kt = KEY_TYPES[rl.key or "ip"]
    if not kt then
        error("wardgate policy " .. tostring(id) .. ": bad rl.key " .. tostring(rl.key), 2)
    end
    local dict_name = rl.dict or "wg_ratelimit"
    local dict = ngx.shared[dict_name]
    if not dict then
        error("wardgate: lua_shared_dict " .. dict_name .. " is not defined", 2)
    end
    local bucket = tostring(rl.bucket or id)
    -- >= 1 us: keeps T far above the float resolution of the stored times
    -- (~1e-8 s); the 1 ms clock makes faster limits meaningless per key anyway
    local T = period / limit
    if T < 1e-6 then
        T = 1e-6
    end
    local header_var
    if kt == 2 then
        if type(rl.header) ~= "string" or rl.header == "" then
            error("wardgate policy " .. tostring(id) .. ": rl.header required for key=header", 2)
        end
        header_var = "http_" .. rl.header:lower():gsub("-", "_")
    end
    return {
        dict = dict,
        T = T,
        cap = (burst + 1) * T,
        -- slack for float comparisons; ngx.now() has 1 ms resolution, so limits
        -- above ~1000/s are only as exact as nginx's own limit_req
        eps = T < 4e-6 and T / 4 or 1e-6,
        fresh_ttl = T + TTL_PAD,
        key_type = kt,
        route_key = bucket .. ":",
        ip_prefix = bucket .. ":",
        header_prefix = bucket .. ":#",
        header_var = header_var,
        status = tonumber(rl.status) or 429,
        headers = rl.headers == true,
        limit_str = tostring(floor(limit)),
        exempt_var = rl.exempt_var,
    }
end

function M.configure(tbl)
    local c = {}
    for id, p in pairs(tbl or {}) do
        local cp = {}
        if p.max_url then
            cp.max_url = positive(id, "max_url", p.max_url)
        end
        if p.max_header_bytes then
            cp.max_header_bytes = positive(id, "max_header_bytes", p.max_header_bytes)
        end
        if p.dup then
            cp.dup = compile_dup(id, p.dup)
        end
        if p.rl then
            cp.rl = compile_rl(id, p.rl)
        end
        c[id] = cp
    end
    compiled = c
    M.config = tbl
end

return M
