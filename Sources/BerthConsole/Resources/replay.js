"use strict";
// Plays an asciicast v2 recording: play/pause, seek (by replaying up to the position) and speed.
(function () {
  const params = new URLSearchParams(location.search);
  const name = params.get("name") || "";
  const channel = params.get("channel");
  const state = document.getElementById("replay-state");
  const seek = document.getElementById("seek");
  const clock = document.getElementById("clock");
  const play = document.getElementById("play");
  const speed = document.getElementById("speed");
  document.getElementById("download").href = "/api/recordings/" + encodeURIComponent(name) + "/download";

  let term = null;
  const plain = document.getElementById("plain");
  if (document.body.dataset.xterm === "yes" && typeof window.Terminal === "function") {
    term = new window.Terminal({ rendererType: "dom", disableStdin: true, cols: 120, rows: 32, scrollback: 5000 });
    term.open(document.getElementById("terminal"));
    window.berthTerminal = term;
  } else {
    document.getElementById("xterm-missing").hidden = false;
    plain.hidden = false;
  }
  function write(text) {
    if (term) term.write(text); else plain.textContent += text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
  }
  function reset() {
    if (term) term.reset(); else plain.textContent = "";
  }

  let events = [];
  let duration = 0;
  let position = 0;
  let next = 0;
  let playing = false;
  let last = 0;

  function show() {
    seek.value = String(position);
    clock.textContent = position.toFixed(1) + " / " + duration.toFixed(1) + " s";
    document.body.dataset.position = position.toFixed(3);
  }

  // Writes every event up to `to`, in one write so a long seek stays fast.
  function advance(to) {
    let text = "";
    while (next < events.length && events[next][0] <= to) { text += events[next][2]; next++; }
    if (text) write(text);
    position = Math.min(to, duration);
  }

  function seekTo(to) {
    reset();
    next = 0;
    advance(to);
    show();
  }

  function tick(now) {
    if (!playing) return;
    advance(position + ((now - last) / 1000) * Number(speed.value));
    last = now;
    show();
    if (position >= duration) { setPlaying(false); state.textContent = "Finished."; return; }
    requestAnimationFrame(tick);
  }

  function setPlaying(on) {
    playing = on;
    play.textContent = on ? "Pause" : "Play";
    play.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) {
      if (position >= duration) seekTo(0);
      last = performance.now();
      state.textContent = "Playing.";
      requestAnimationFrame(tick);
    }
  }

  play.addEventListener("click", () => setPlaying(!playing));
  seek.addEventListener("input", () => { seekTo(Number(seek.value)); });

  async function load() {
    const url = "/api/recordings/" + encodeURIComponent(name) + "/cast" + (channel ? "?channel=" + encodeURIComponent(channel) : "");
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) { state.textContent = "Cannot load the recording: " + (await response.text()); return; }
    const lines = (await response.text()).split("\n").filter((line) => line.trim());
    const header = JSON.parse(lines.shift() || "{}");
    if (term && header.width && header.height) term.resize(Math.min(header.width, 300), Math.min(header.height, 100));
    events = lines.map((line) => JSON.parse(line)).filter((event) => event[1] === "o");
    duration = events.length ? events[events.length - 1][0] : 0;
    seek.max = String(duration);
    state.textContent = "Ready: " + events.length + " output events, " + duration.toFixed(1) + " s.";
    document.body.dataset.loaded = "yes";
    show();
  }
  load();
})();
