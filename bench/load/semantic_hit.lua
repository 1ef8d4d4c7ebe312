-- wrk script: paraphrases of one cached question: semantic hits (embed + search + verify)
-- with aliases off, repeats served through their aliases with them on.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
local variants = {
  "what's the return policy for items bought online",
  "What is the return policy for items purchased online?",
  "what is your return policy for things bought online?",
  "What's the returns policy for items bought online?",
}
local i = 0
request = function()
  i = i + 1
  local q = variants[(i % #variants) + 1]
  local body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"' .. q .. '"}],"temperature":0}'
  return wrk.format(nil, nil, nil, body)
end
