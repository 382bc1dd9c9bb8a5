//! The Lua scripts that make every multi-key change atomic in Redis.
//!
//! Keys of one tunnel share the hash tag `{name}` (see [`super::keys`]), so a
//! Redis Cluster could shard them; only the per-agent-key name set lives
//! under its own tag (claims and releases touch both: on a sharded Redis
//! they would need two steps).
//!
//! Queue entries are stream entries with explicit ids `0-<seq>` (a per-tunnel
//! counter, so `seq` is the queue's commit order as an `i64`) and the fields
//! `i` (request id), `c` (client address key), `t` (received, ms) and `f`
//! (the frame). The stats hash holds `seq`, `n`/`b` (count/bytes) and
//! `n:<client>`/`b:<client>`; the ids hash maps request id → stream id.

/// Helpers shared by the queue scripts (prepended to them).
const QUEUE_PRELUDE: &str = r"
local function fields(list)
  local f = {}
  for i = 1, #list, 2 do f[list[i]] = list[i + 1] end
  return f
end
local function fenced(lease, epoch)
  if epoch == '' then return false end
  return redis.call('HGET', lease, 'epoch') ~= epoch
end
-- stream, stats, ids: deletes one entry and its accounting.
local function drop(stream, stats, ids, sid, f)
  redis.call('XACK', stream, 'g', sid)
  redis.call('XDEL', stream, sid)
  redis.call('HDEL', ids, f.i)
  local len = #f.f
  redis.call('HINCRBY', stats, 'n', -1)
  redis.call('HINCRBY', stats, 'b', -len)
  if redis.call('HINCRBY', stats, 'n:' .. f.c, -1) <= 0 then
    redis.call('HDEL', stats, 'n:' .. f.c, 'b:' .. f.c)
  else
    redis.call('HINCRBY', stats, 'b:' .. f.c, -len)
  end
end
";

/// KEYS: name hash, the key's name set. ARGV: key hash, most names, name.
/// Returns `{'granted'}`, `{'taken'}` or `{'too_many', held}`.
pub const CLAIM_NAME: &str = r"
local owner = redis.call('HGET', KEYS[1], 'key')
if owner then
  if owner == ARGV[1] then return {'granted'} end
  return {'taken'}
end
local held = redis.call('SCARD', KEYS[2])
if held >= tonumber(ARGV[2]) then return {'too_many', tostring(held)} end
redis.call('HSET', KEYS[1], 'key', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return {'granted'}
";

/// KEYS: name hash, the key's name set, stream, stats, ids, the set of
/// names with edge rules. ARGV: key hash, dry run ('1'/'0'), name. Returns `{'released', queued}`, `{'unknown'}`
/// or `{'not_owner'}`.
pub const RELEASE_NAME: &str = r"
local owner = redis.call('HGET', KEYS[1], 'key')
if not owner then return {'unknown'} end
if owner ~= ARGV[1] then return {'not_owner'} end
local queued = redis.call('XLEN', KEYS[3])
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('SREM', KEYS[6], ARGV[3])
end
return {'released', tostring(queued)}
";

/// KEYS: name hash. ARGV: the answer (JSON, '' for the default). Only on a
/// claimed name; returns 1 when set.
pub const SET_ANSWER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'answer', ARGV[1])
return 1
";

/// KEYS: name hash, the set of names with edge rules. ARGV: name, the
/// rules (JSON without the signing secret; '' clears them), the signing
/// secret sealed for this name (see `cluster::seal`; '' for none). Rules and
/// secret change together, so no node reads new rules with an old secret.
/// Only on a claimed name.
pub const SET_RULES: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'rules', 'sealed')
  redis.call('SREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'rules', ARGV[2])
  if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], 'sealed')
  else
    redis.call('HSET', KEYS[1], 'sealed', ARGV[3])
  end
  redis.call('SADD', KEYS[2], ARGV[1])
end
return 1
";

/// KEYS: stream, stats, ids. ARGV: request id, client, received ms, frame,
/// tunnel name, cutoff (ms), then the quota: most entries, most bytes, and
/// the policy's constants (client share divisor, least entries per client,
/// small-entry reserve divisor, largest small entry) passed from
/// `durable::policy` so there is one definition.
///
/// Expiry, the quota check and the append are one script: Redis runs it
/// alone, so appends from any number of nodes can never pass the quota
/// between a check and a write. Mirrors `policy::admit` rule for rule.
/// Returns `{'queued', seq, expired}` or `{'full', expired, n, b,
/// n:client, b:client}` (the usage, for the refusal's message).
const ENQUEUE_BODY: &str = r"
local cutoff = tonumber(ARGV[6])
local expired = 0
local done = false
while not done do
  local batch = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 64)
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    local f = fields(e[2])
    if tonumber(f.t) >= cutoff then done = true break end
    drop(KEYS[1], KEYS[2], KEYS[3], e[1], f)
    expired = expired + 1
  end
end
local client = ARGV[2]
local s = redis.call('HMGET', KEYS[2], 'n', 'b', 'n:' .. client, 'b:' .. client)
local n, b = tonumber(s[1] or 0), tonumber(s[2] or 0)
local cn, cb = tonumber(s[3] or 0), tonumber(s[4] or 0)
local size = #ARGV[4]
local max_n, max_b = tonumber(ARGV[7]), tonumber(ARGV[8])
local share, min_client = tonumber(ARGV[9]), tonumber(ARGV[10])
local reserve, small = tonumber(ARGV[11]), tonumber(ARGV[12])
local count_share = math.max(math.floor(max_n / share), min_client)
local bytes_share = math.floor(max_b / share)
local open_to_large = max_b - math.floor(max_b / reserve)
if n >= max_n or b + size > max_b or cn >= count_share or cb + size > bytes_share
  or (size > small and b + size > open_to_large) then
  return {'full', expired, n, b, cn, cb}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'g', '0', 'MKSTREAM')
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local sid = '0-' .. seq
redis.call('XADD', KEYS[1], sid, 'i', ARGV[1], 'c', client, 't', ARGV[3], 'f', ARGV[4])
redis.call('HSET', KEYS[3], ARGV[1], sid)
redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('HINCRBY', KEYS[2], 'b', size)
redis.call('HINCRBY', KEYS[2], 'n:' .. client, 1)
redis.call('HINCRBY', KEYS[2], 'b:' .. client, size)
redis.call('PUBLISH', 'ht:queued', ARGV[5])
return {'queued', seq, expired}
";

/// KEYS: stream, lease. ARGV: consumer, after (seq), limit, epoch ('' = no
/// fence). First claims entries after `after` that earlier consumers read
/// and never acked (`XAUTOCLAIM`, in order), then reads new ones
/// (`XREADGROUP >`). Returns `{'fenced'}` or `{'ok', seq, id, frame, …}`.
const PENDING_BODY: &str = r"
if fenced(KEYS[2], ARGV[4]) then return {'fenced'} end
local out = {'ok'}
if redis.call('EXISTS', KEYS[1]) == 0 then return out end
local limit = tonumber(ARGV[3])
local got = 0
local function push(e)
  local f = fields(e[2])
  table.insert(out, string.match(e[1], '^0%-(%d+)$'))
  table.insert(out, f.i)
  table.insert(out, f.f)
  got = got + 1
end
local cursor = '0-' .. (tonumber(ARGV[2]) + 1)
while got < limit do
  local r = redis.call('XAUTOCLAIM', KEYS[1], 'g', ARGV[1], 0, cursor, 'COUNT', limit - got)
  for _, e in ipairs(r[2]) do push(e) end
  cursor = r[1]
  if cursor == '0-0' then break end
end
if got < limit and cursor == '0-0' then
  local r = redis.call('XREADGROUP', 'GROUP', 'g', ARGV[1], 'COUNT', limit - got, 'STREAMS', KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do push(e) end
  end
end
return out
";

/// KEYS: stream, stats, ids, lease. ARGV: request id, epoch ('' = no fence).
/// Returns `{'acked'}`, `{'unknown'}` or `{'fenced'}`.
const ACK_BODY: &str = r"
if fenced(KEYS[4], ARGV[2]) then return {'fenced'} end
local sid = redis.call('HGET', KEYS[3], ARGV[1])
if not sid then return {'unknown'} end
local e = redis.call('XRANGE', KEYS[1], sid, sid)
if #e == 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return {'unknown'}
end
drop(KEYS[1], KEYS[2], KEYS[3], sid, fields(e[1][2]))
return {'acked'}
";

/// KEYS: lease, epoch counter. ARGV: node, session, internal address, ttl
/// (ms), takeover ('1'/'0'), the tunnel's mode, the tunnel's name (published
/// on [`OWNERS_CHANNEL`] so nodes drop their cached owner). A live lease of another session is kept unless
/// `takeover`; otherwise the epoch is bumped and the lease is this
/// session's. Returns `{'granted', epoch, previous node}` or `{'held', node, epoch}`.
pub const CLAIM_LEASE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'node', 'session', 'epoch')
if cur[3] and cur[2] ~= ARGV[2] and ARGV[5] ~= '1' then
  return {'held', cur[1], cur[3]}
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'session', ARGV[2], 'addr', ARGV[3], 'epoch', epoch, 'mode', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', 'ht:owners', ARGV[7])
return {'granted', tostring(epoch), cur[1] or ''}
";

/// KEYS: lease. ARGV: epoch, ttl (ms). 1 when still ours (renewed), else 0.
pub const RENEW_LEASE: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// KEYS: lease. ARGV: epoch, name. Deletes the lease when it is still
/// ours (and says so on [`OWNERS_CHANNEL`]).
pub const RELEASE_LEASE: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', 'ht:owners', ARGV[2])
return 1
";

/// Where lease changes are announced (tunnel names only, never bodies).
pub const OWNERS_CHANNEL: &str = "ht:owners";
/// Where new queue entries are announced (tunnel names only, never bodies).
pub const QUEUED_CHANNEL: &str = "ht:queued";

/// The queue scripts, with the shared helpers. See [`ENQUEUE_BODY`].
pub fn enqueue() -> String {
    format!("{QUEUE_PRELUDE}{ENQUEUE_BODY}")
}
/// See [`PENDING_BODY`].
pub fn pending() -> String {
    format!("{QUEUE_PRELUDE}{PENDING_BODY}")
}
/// See [`ACK_BODY`].
pub fn ack() -> String {
    format!("{QUEUE_PRELUDE}{ACK_BODY}")
}
