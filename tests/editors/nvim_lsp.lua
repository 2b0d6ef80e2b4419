-- Neovim (0.7+) with its built-in LSP client attached to `archdsl lsp`: open a spec with an error,
-- wait for the diagnostic, mend the line as a user would, wait for the diagnostics to clear, then
-- ask for a hover. What arrived is written as JSON to $ARCHDSL_NVIM_OUT (tests/test_lsp_neovim.py).
local spec = os.getenv("ARCHDSL_NVIM_SPEC")
local cmd = vim.fn.json_decode(os.getenv("ARCHDSL_NVIM_CMD"))
local fix_line = tonumber(os.getenv("ARCHDSL_NVIM_FIX_LINE"))  -- 0-based
local fix_text = os.getenv("ARCHDSL_NVIM_FIX_TEXT")
local result = { diagnostics = {}, cleared = false, hover = vim.NIL }

vim.cmd("edit " .. vim.fn.fnameescape(spec))
local buf = vim.api.nvim_get_current_buf()
local id = vim.lsp.start_client({ name = "archdsl", cmd = cmd, root_dir = vim.fn.fnamemodify(spec, ":h") })
vim.lsp.buf_attach_client(buf, id)

vim.wait(20000, function() return #vim.diagnostic.get(buf) > 0 end, 20)
for _, d in ipairs(vim.diagnostic.get(buf)) do
  table.insert(result.diagnostics, { lnum = d.lnum, col = d.col, end_lnum = d.end_lnum, end_col = d.end_col,
                                     message = d.message, source = d.source })
end

vim.api.nvim_buf_set_lines(buf, fix_line, fix_line + 1, false, { fix_text })
result.cleared = vim.wait(20000, function() return #vim.diagnostic.get(buf) == 0 end, 20)

local params = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = fix_line, character = 4 } }
local responses = vim.lsp.buf_request_sync(buf, "textDocument/hover", params, 20000)
for _, r in pairs(responses or {}) do
  if r.result and r.result.contents then result.hover = r.result.contents.value end
end

local f = io.open(os.getenv("ARCHDSL_NVIM_OUT"), "w")
f:write(vim.fn.json_encode(result))
f:close()
vim.lsp.stop_client(id, true)
vim.cmd("qa!")
