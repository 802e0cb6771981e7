-- Grade the run: every group but 0 (the examples) is worth the same share
-- of 100 points; the status is the first failed group's.
local groups = <LUA_MAP_TEST_ID_REG>
local ids = {}
for id, _ in pairs(groups) do ids[#ids + 1] = id end
table.sort(ids)
local status, total, counted, per_group = "OK", 0, 0, {}
for _, id in ipairs(ids) do
  local r = get_register(groups[id])
  if r == nil then return end
  per_group[id] = r.status
  if r.status ~= "OK" and status == "OK" then status = r.status end
  if id ~= "0" then total = total + r.score; counted = counted + 1 end
end
local score = 0
if counted > 0 then score = math.floor(total / counted + 0.5) end
set_register(<obsreg:result>, {status = status, score = score, groups = per_group})
