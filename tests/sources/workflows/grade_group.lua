-- Grade a group: the worst test decides (status of the first failed test
-- by test id, the lowest score).
local tests = <LUA_MAP_TEST_ID_REG>
local ids = {}
for id, _ in pairs(tests) do ids[#ids + 1] = id end
table.sort(ids)
local status, score = "OK", 100
for _, id in ipairs(ids) do
  local r = get_register(tests[id])
  if r == nil then return end
  if r.status ~= "OK" and status == "OK" then status = r.status end
  if r.score < score then score = r.score end
end
set_register(<r:group_grade_res_<GROUP_ID>>, {group = "<GROUP_ID>", status = status, score = score})
