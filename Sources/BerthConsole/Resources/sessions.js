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

  // Rows are updated in place (keyed by connection and channel), so a focused button or link
  // keeps its focus while the counters change.
  const rows = new Map();

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
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

  function actions(cell, connection, session) {
    cell.replaceChildren();
    if (session) {
      const watch = document.createElement("a");
      watch.href = "/watch?connection=" + encodeURIComponent(connection.id) + "&channel=" + session.channel;
      watch.textContent = "Watch";
      watch.className = "watch";
      watch.setAttribute("aria-label", "Watch the session of " + connection.authenticatedUsername + " (channel " + session.channel + ")");
      cell.appendChild(watch);
      const watching = document.createElement("span");
      watching.className = "watching";
      cell.appendChild(watching);
    }
    if (admin && connection.authenticated) {
      if (session) {
        cell.appendChild(endButton("End session", { connection: connection.id, channel: session.channel,
          description: "Session " + session.channel + " of " + connection.authenticatedUsername }));
      }
      cell.appendChild(endButton("End connection", { connection: connection.id, channel: "",
        description: "Connection of " + connection.authenticatedUsername + " from " + connection.remoteAddress }));
    }
  }

  function render(list) {
    const wanted = [];
    for (const connection of list.connections) {
      const sessions = connection.sessions.length ? connection.sessions : [null];
      for (const session of sessions) {
        const key = connection.id + ":" + (session ? session.channel : "-");
        let row = rows.get(key);
        if (!row) {
          row = document.createElement("tr");
          row.dataset.connection = connection.id;
          if (session) row.dataset.channel = String(session.channel);
          for (let i = 0; i < 9; i++) row.appendChild(document.createElement("td"));
          rows.set(key, row);
        }
        const cells = row.children;
        setText(cells[0], connection.username || "—");
        setText(cells[1], connection.authenticated ? connection.authenticatedUsername : "(signing in)");
        setText(cells[2], connection.remoteAddress);
        setText(cells[3], connection.backend ? connection.backend + (connection.container ? " / " + connection.container : "") : "—");
        setText(cells[4], new Date((session || connection).started).toLocaleString());
        setText(cells[5], session ? session.program || "(starting)" : "(no session)");
        setText(cells[6], session ? bytes(session.bytesIn) : "—");
        setText(cells[7], session ? bytes(session.bytesOut) : "—");
        const shape = [admin, connection.authenticated, connection.authenticatedUsername, Boolean(session)].join("|");
        if (row.dataset.shape !== shape) {
          actions(cells[8], connection, session);
          row.dataset.shape = shape;
        }
        const watching = cells[8].querySelector(".watching");
        if (watching) setText(watching, session && session.watchers ? " (" + session.watchers + " watching) " : " ");
        wanted.push(row);
      }
    }
    const keep = new Set(wanted);
    for (const [key, row] of rows) {
      if (!keep.has(row)) { row.remove(); rows.delete(key); }
    }
    // Moving a row would take the focus out of it: only rows out of place move.
    wanted.forEach((row, index) => {
      if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
    });
    // A live region: it changes only when the number of connections does, so screen readers
    // are not told about every counter update.
    setText(liveState, "Live: " + list.connections.length + " connection(s)");
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
