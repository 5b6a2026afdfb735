"use strict";
// Lists the audit directory, filtered by user, date and connection.
(function () {
  const tbody = document.querySelector("#recordings tbody");
  const listState = document.getElementById("list-state");
  if (document.body.dataset.recordings !== "yes") document.getElementById("unavailable").hidden = false;

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function link(parent, href, text, label) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.setAttribute("aria-label", label);
    parent.appendChild(a);
    parent.appendChild(document.createTextNode(" "));
    return a;
  }

  // The filter lives in the address too, so a search can be bookmarked or shared.
  const initial = new URLSearchParams(location.search);
  for (const name of ["user", "date", "connection"]) {
    if (initial.get(name)) document.getElementById(name).value = initial.get(name);
  }
  let generation = 0;

  async function load() {
    const mine = ++generation;
    const form = new FormData(document.getElementById("filter"));
    const query = new URLSearchParams(form);
    history.replaceState(null, "", "/recordings?" + query.toString());
    const response = await fetch("/api/recordings?" + query.toString(), { credentials: "same-origin" });
    if (mine !== generation) return;
    if (!response.ok) { listState.textContent = "Cannot list recordings (" + response.status + ")"; return; }
    const list = await response.json();
    if (mine !== generation) return;
    tbody.replaceChildren();
    for (const entry of list.recordings) {
      const row = document.createElement("tr");
      row.dataset.connection = entry.connection;
      cell(row, entry.username || "—");
      cell(row, entry.connection);
      cell(row, entry.channel === undefined || entry.channel === null ? "all" : String(entry.channel));
      cell(row, entry.remoteAddress || "—");
      cell(row, entry.modified.replace("T", " ").replace("Z", ""));
      cell(row, entry.size + " B");
      const actions = cell(row, "");
      const name = encodeURIComponent(entry.name);
      link(actions, "/replay?name=" + name, "Replay", "Replay " + entry.name).className = "replay";
      link(actions, "/api/recordings/" + name + "/download", "Download", "Download " + entry.name).className = "download";
      tbody.appendChild(row);
    }
    listState.textContent = list.recordings.length + " recording(s)";
  }

  document.getElementById("filter").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
})();
