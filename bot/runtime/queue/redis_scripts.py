"""The Redis store's Lua scripts: the writes that must be one atomic round trip.

Redis runs a script atomically; the store registers these once
(``register_script``: ``EVALSHA`` afterwards).
https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
"""

# enqueue in one round trip: the job's id, the coalescing, our hash and arq's entry, and
# the block's pending deliveries made final — all or nothing, as Lua scripts run
# atomically.  A queued predecessor is marked superseded and, unless an arq worker has
# already started it (its in-progress key: the run will be a no-op), taken out of arq's
# queue with its arq keys; a tombstone in-progress key makes an arq worker that read
# the queue just before abort its start (arq WATCHes that key).  A running predecessor
# is only flagged: it sees is_superseded() and the new job waits for the PR's lock.
# Job keys are built here from the prefix: one Redis, not a cluster (see above).
# KEYS: seq, the PR's latest, arq's queue.  ARGV: prefix, arq's job/retry/in-progress
# key prefixes, PR key, kind, payload, delivery id, now (s), now (ms), arq job body,
# id marker, job retention (s), arq job expiry (ms), delivery retention (s), tombstone
# (ms), then the pending (delivery key, value) pairs.
ENQUEUE = """
local prefix = ARGV[1]
local job_id = redis.call('INCR', KEYS[1])
local prev = redis.call('GET', KEYS[2])
local prev_state = false
local behind = ''
if prev then
  local prev_key = prefix .. ':job:' .. prev
  prev_state = redis.call('HGET', prev_key, 'state')
  if prev_state == 'queued' then
    redis.call('HSET', prev_key, 'state', 'superseded', 'superseded_by', job_id,
               'updated', ARGV[9])
    -- the run the predecessor waited for, if it still runs: this one waits for it too
    local waited = redis.call('HGET', prev_key, 'behind')
    if waited and waited ~= '' and
       redis.call('HGET', prefix .. ':job:' .. waited, 'state') == 'running' then
      behind = waited
    end
    local arq_prev = prefix .. ':' .. prev
    if redis.call('EXISTS', ARGV[4] .. arq_prev) == 0 then
      redis.call('ZREM', KEYS[3], arq_prev)
      redis.call('DEL', ARGV[2] .. arq_prev, ARGV[3] .. arq_prev)
      redis.call('SET', ARGV[4] .. arq_prev, 'superseded', 'PX', ARGV[16])
    end
  elseif prev_state == 'running' then
    redis.call('HSET', prev_key, 'superseded_by', job_id)
    behind = prev
  end
end
redis.call('SET', KEYS[2], job_id, 'EX', ARGV[13])
local job_key = prefix .. ':job:' .. job_id
redis.call('HSET', job_key, 'id', job_id, 'key', ARGV[5], 'kind', ARGV[6],
           'payload', ARGV[7], 'state', 'queued', 'attempts', 0, 'deferrals', 0,
           'data', '{}', 'delivery_id', ARGV[8], 'supersedes', prev or '', 'behind', behind,
           'run_after', ARGV[9], 'created', ARGV[9], 'updated', ARGV[9])
redis.call('EXPIRE', job_key, ARGV[13])
local arq_id = prefix .. ':' .. job_id
local body, marker = ARGV[11], ARGV[12]
local at = string.find(body, marker, 1, true)
body = string.sub(body, 1, at - 1) .. job_id .. string.sub(body, at + #marker)
redis.call('SET', ARGV[2] .. arq_id, body, 'PX', ARGV[14])
redis.call('ZADD', KEYS[3], ARGV[10], arq_id)
for i = 17, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ARGV[15])
end
return {job_id, prev or '', prev_state or '', behind}
"""

# superseded_data: the data of the unfinished jobs down the ``supersedes`` chain,
# newest first.  ARGV: prefix, job id, the most links to follow.
SUPERSEDED_DATA = """
local prefix = ARGV[1]
local out = {}
local current = redis.call('HGET', prefix .. ':job:' .. ARGV[2], 'supersedes')
for _ = 1, tonumber(ARGV[3]) do
  if not current or current == '' then break end
  local f = redis.call('HMGET', prefix .. ':job:' .. current, 'state', 'data', 'supersedes')
  local state = f[1]
  if not state or state == 'done' or state == 'failed' then break end
  if (state == 'superseded' or state == 'running') and f[2] and f[2] ~= '{}' then
    table.insert(out, f[2])
  end
  current = f[3]
end
return out
"""
