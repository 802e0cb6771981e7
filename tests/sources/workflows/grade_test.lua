-- Grade one test (sio3pack's "Grade test <id>", reactive). Inputs: the
-- solution's execution report, the checker's report; object 0 is the
-- checker's stdout (sinol protocol: OK or not, a comment, points in %).
local run = get_register(<r:run_test_res_<TEST_ID>>)
local chk = get_register(<r:checker_res_<TEST_ID>>)
local out = <r:grade_res_<TEST_ID>>
local function time_of(report)
  local t = 0
  for _, p in ipairs(report.processes) do t = t + p.cpu_time_ms end
  return t
end
if run ~= nil and run.status ~= "OK" then
  set_register(out, {test = "<TEST_ID>", status = run.status, score = 0, time_ms = time_of(run)})
  return
end
if run == nil or chk == nil then return end
if chk.status ~= "OK" then error("the checker failed: " .. chk.status) end
local answer = get_object(0)
if answer == nil then return end
local lines = {}
for line in (answer:get_value() .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
local ok = (lines[1] or ""):match("^%s*OK%s*$") ~= nil
local points = tonumber((lines[3] or ""):match("^%s*(%d+)")) or 100
print("test <TEST_ID>:", lines[1], lines[2])
set_register(out, {test = "<TEST_ID>", status = ok and "OK" or "WA", score = ok and points or 0,
                   comment = lines[2] or "", time_ms = time_of(run)})
