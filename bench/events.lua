-- wrk script: POST a realistic ~1.5 KB TaskRouter event callback with a unique event Sid per
-- request (so none is a duplicate). Used by bench/ingest.sh.
local counter = 0
local path = os.getenv("WRK_PATH") or "/webhooks/events"
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

local attributes = "%7B%22from_country%22%3A%22US%22%2C%22called%22%3A%22%2B15550000101%22%2C%22to_country%22%3A%22US%22%2C%22selected_product%22%3A%22support%22%2C%22to_state%22%3A%22FL%22%2C%22caller_country%22%3A%22US%22%2C%22call_sid%22%3A%22CAb5017f5a18383f8e6cd7bb23ed659cf1%22%2C%22from_zip%22%3A%2200000%22%2C%22from%22%3A%22%2B15550000102%22%2C%22direction%22%3A%22inbound%22%2C%22caller_state%22%3A%22MS%22%2C%22api_version%22%3A%222010-04-01%22%2C%22from_state%22%3A%22MS%22%2C%22caller%22%3A%22%2B15550000102%22%2C%22to%22%3A%22%2B15550000101%22%7D"

function request()
  counter = counter + 1
  local n = id * 100000000 + counter
  local sid = string.format("EV%032x", n)
  local task = string.format("WT%032x", n % 5000)
  local ms = 1700000000000 + n
  local body = "TaskPriority=1&EventType=task.updated&WorkflowName=Support+WorkFlow&Timestamp=" .. math.floor(ms / 1000) ..
    "&TaskAge=0&TaskAssignmentStatus=pending&TaskAttributes=" .. attributes ..
    "&TaskVersion=1&TaskChannelUniqueName=voice&WorkspaceName=twilio-cti&TaskChannelSid=TC8903caf2deb7aa984c841c011dbb7868" ..
    "&TaskQueueEnteredDate=1700000000&TaskDateCreated=1700000000&ResourceType=task&TaskQueueName=support" ..
    "&WorkflowSid=WW85ecb2144638aea1272055c227d1eef5&AccountSid=AC0000000000000000000000000000c0de&Sid=" .. sid ..
    "&TimestampMs=" .. ms .. "&TaskQueueTargetExpression=skill+has+%22support%22&WorkspaceSid=WS371fcddcddd399063a3e0e3dcda55e5e" ..
    "&TaskQueueSid=WQe285a28ad47406f4dfb8f146598eb14f&EventDescription=Task+" .. task .. "+updated&TaskSid=" .. task ..
    "&ResourceSid=" .. task
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
