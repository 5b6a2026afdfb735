"use strict";
// Watches one session: the kept output first, then every chunk as it happens. Read-only.
(function () {
  const params = new URLSearchParams(location.search);
  const state = document.getElementById("watch-state");
  const useTerminal = document.body.dataset.xterm === "yes" && typeof window.Terminal === "function";
  let write;
  if (useTerminal) {
    const term = new window.Terminal({ rendererType: "dom", disableStdin: true, cols: 120, rows: 32, scrollback: 5000, convertEol: false });
    term.open(document.getElementById("terminal"));
    window.berthTerminal = term;
    write = (text) => term.write(text);
  } else {
    document.getElementById("xterm-missing").hidden = false;
    const plain = document.getElementById("plain");
    plain.hidden = false;
    write = (text) => { plain.textContent += text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ""); };
  }
  let decoder = new TextDecoder("utf-8");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/watch?connection=" +
    encodeURIComponent(params.get("connection") || "") + "&channel=" + encodeURIComponent(params.get("channel") || "");
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") {
      write(decoder.decode(new Uint8Array(event.data), { stream: true }));
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "start") {
      state.textContent = message.truncated ? "Watching live. Earlier output is not shown: the console keeps the last 1 MiB of a session." : "Watching live from the start of the session.";
    } else if (message.type === "skipped") {
      state.textContent = "Watching live. This view fell behind and was restarted from the last 1 MiB.";
      decoder = new TextDecoder("utf-8");
      if (window.berthTerminal) window.berthTerminal.reset();
    } else if (message.type === "ended") {
      state.textContent = "The session has ended.";
      document.body.dataset.ended = "yes";
    }
  };
  socket.onclose = () => {
    if (document.body.dataset.ended !== "yes") state.textContent = "The session is gone or the connection to the console was lost.";
    document.body.dataset.ended = "yes";
  };
})();
