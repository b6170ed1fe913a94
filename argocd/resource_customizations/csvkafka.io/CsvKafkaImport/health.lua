-- Argo CD health of a CsvKafkaImport, from the conditions the csvkafka operator writes.
-- Order matters: a status older than the spec says nothing about the spec, so it comes first.
local hs = {}

local function condition(kind)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil
    or (generation ~= nil and obj.status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the csvkafka operator to observe generation " .. tostring(generation)
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended by spec.suspend"
  local progressing = condition("Progressing")
  if progressing ~= nil and progressing.message ~= nil and progressing.message ~= "" then
    hs.message = progressing.message
  end
  return hs
end

-- A failed import, and a worker that hangs (the operator replaces it, each time one of the Job's
-- retries) until its checkpoint moves again: both want an operator of the app to look.
for _, kind in ipairs({"Failed", "Stalled"}) do
  local c = condition(kind)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.reason .. ": " .. c.message
    return hs
  end
end

local succeeded = condition("Succeeded")
if succeeded ~= nil and succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = succeeded.message
  -- spec.onObjectError skip asked the import to go on past bad objects: they are named, not a failure.
  local skipped = condition("ObjectsFailed")
  if skipped ~= nil and skipped.status == "True" then
    hs.message = hs.message .. ". " .. skipped.reason .. ": " .. skipped.message
  end
  return hs
end

hs.status = "Progressing"
local progressing = condition("Progressing")
if progressing ~= nil then
  hs.message = progressing.reason .. ": " .. progressing.message
else
  hs.message = "Phase " .. tostring(obj.status.phase or "Pending")
end
return hs
