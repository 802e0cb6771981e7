-- Verify the outgen or inwer runs (sio3pack's "Verify outgen", "Verify inwer"):
-- every run must have status OK.
local runs = <LUA_MAP_TEST_ID_REG>
local failed = {}
for id, reg in pairs(runs) do
  local r = get_register(reg)
  if r.status ~= "OK" then failed[#failed + 1] = id end
end
table.sort(failed)
set_register(<obsreg:result>, {ok = #failed == 0, failed = failed})
