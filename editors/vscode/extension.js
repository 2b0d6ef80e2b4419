// The archdsl extension's client: starts `archdsl lsp` (the path is the `archdsl.server.path`
// setting) for .arch files and restarts it when a setting changes. Everything the editor shows
// comes from the server; highlighting comes from syntaxes/archdsl.tmLanguage.json.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function start() {
  const settings = vscode.workspace.getConfiguration("archdsl");
  const server = { command: settings.get("server.path", "archdsl"), args: ["lsp"] };
  client = new LanguageClient("archdsl", "archdsl", server, {
    documentSelector: [{ language: "archdsl" }],
    initializationOptions: {
      latencyProfile: settings.get("latencyProfile", ""),
      inlayHints: settings.get("inlayHints", true),
    },
  });
  return client.start();
}

function activate(context) {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("archdsl") && client) {
        await client.stop();
        await start();
      }
    }),
  );
  return start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
