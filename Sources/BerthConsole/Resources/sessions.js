"use strict";
// The live sessions page: a WebSocket pushes the whole list whenever it changes.
(function () {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const admin = document.body.dataset.role === "admin";
  const tbody = document.querySelector("#sessions tbody");
  const liveState = document.getElementById("live-state");
  const actionState = document.getElementById("action-state");
  const dialog = document.getElementById("end-dialog");
  let pending = null;

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
    return (n / 1073741824).toFixed(2) + " GiB";
  }

  function endButton(label, target) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.className = "end";
    button.addEventListener("click", () => {
      pending = target;
      document.getElementById("end-title").textContent = label;
      document.getElementById("end-what").textContent = target.description;
      document.getElementById("end-reason").value = "";
      dialog.showModal();
    });
    return button;
  }

  function render(list) {
    tbody.replaceChildren();
    for (const connection of list.connections) {
      const sessions = connection.sessions.length ? connection.sessions : [null];
      for (const session of sessions) {
        const row = document.createElement("tr");
        row.dataset.connection = connection.id;
        if (session) row.dataset.channel = String(session.channel);
        cell(row, connection.username || "—");
        cell(row, connection.authenticated ? connection.authenticatedUsername : "(signing in)");
        cell(row, connection.remoteAddress);
        cell(row, connection.backend ? connection.backend + (connection.container ? " / " + connection.container : "") : "—");
        cell(row, new Date((session || connection).started).toLocaleString());
        cell(row, session ? session.program || "(starting)" : "(no session)");
        cell(row, session ? bytes(session.bytesIn) : "—");
        cell(row, session ? bytes(session.bytesOut) : "—");
        const actions = cell(row, "");
        if (session) {
          const watch = document.createElement("a");
          watch.href = "/watch?connection=" + encodeURIComponent(connection.id) + "&channel=" + session.channel;
          watch.textContent = "Watch";
          watch.className = "watch";
          watch.setAttribute("aria-label", "Watch the session of " + connection.authenticatedUsername + " (channel " + session.channel + ")");
          actions.appendChild(watch);
          if (session.watchers) actions.appendChild(document.createTextNode(" (" + session.watchers + " watching) "));
        }
        if (admin && connection.authenticated) {
          if (session) {
            actions.appendChild(endButton("End session", { connection: connection.id, channel: session.channel,
              description: "Session " + session.channel + " of " + connection.authenticatedUsername }));
          }
          actions.appendChild(endButton("End connection", { connection: connection.id, channel: "",
            description: "Connection of " + connection.authenticatedUsername + " from " + connection.remoteAddress }));
        }
        tbody.appendChild(row);
      }
    }
    liveState.textContent = list.connections.length + " connection(s), updated " + new Date().toLocaleTimeString();
  }

  document.getElementById("end-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("end-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!pending) return;
    const body = new URLSearchParams({ csrf, connection: pending.connection, channel: String(pending.channel),
      reason: document.getElementById("end-reason").value });
    dialog.close();
    const response = await fetch("/api/end", { method: "POST", body, credentials: "same-origin" });
    actionState.textContent = response.ok ? "Ended: " + pending.description : "Could not end it: " + (await response.text());
    pending = null;
  });

  function connect() {
    const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/sessions");
    socket.onmessage = (event) => render(JSON.parse(event.data));
    socket.onopen = () => { liveState.textContent = "Live"; };
    socket.onclose = () => {
      liveState.textContent = "Disconnected from the server; retrying…";
      setTimeout(connect, 2000);
    };
  }
  connect();
})();
