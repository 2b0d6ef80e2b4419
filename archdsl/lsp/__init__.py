"""The language server (`archdsl lsp`): the compiler's front end, cost and latency figures,
shown in an editor while a spec is written."""
