-- wrk script for bench/serve-load.sh: POSTs the file named by $BODY with the content type
-- $CTYPE (default application/json) to the URL wrk is given.
local f = assert(io.open(os.getenv("BODY"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = os.getenv("CTYPE") or "application/json"
