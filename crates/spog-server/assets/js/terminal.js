// The web terminal (SPEC 13.1): xterm.js fitted to its box, one WebSocket to
// /api/v1/hosts/{id}/terminal (the session cookie authenticates it). Binary messages are the
// terminal's bytes both ways; text messages are the hub's `session`, `exit`, `error` and
// `pong`, and our `resize` and `ping`. The session is over when the hub says `exit` or
// `error`, or the socket closes: the banner then says why, and links the recording.
import { Terminal } from "../vendor/@xterm/xterm/lib/xterm.mjs";
import { FitAddon } from "../vendor/@xterm/addon-fit/lib/addon-fit.mjs";

const screen = document.getElementById("terminal");
// Proxies drop sockets that say nothing for a minute or so; a ping keeps an idle shell open.
const PING_EVERY_MS = 25000;

// What the end reasons of SPEC 13.1 mean to the person at the terminal.
function endedBecause(reason, exitCode) {
  switch (reason) {
    case "exited":
      return exitCode === null || exitCode === undefined
        ? "The session ended: the shell exited."
        : `The session ended: the shell exited with code ${exitCode}.`;
    case "closed":
      return "The session was closed.";
    case "agent_disconnected":
      return "The session ended: the host's agent disconnected.";
    case "ended":
      return "The session was ended by an administrator.";
    case "idle":
      return "The session ended after a time without input (idle).";
    case "host_deleted":
      return "The session ended: the host was deleted.";
    case "spawn_failed":
      return "The session could not start: the host could not start the shell.";
    default:
      return `The session ended (${reason}).`;
  }
}

function socketUrl(path, cols, rows) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}?cols=${cols}&rows=${rows}`;
}

function start() {
  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, monospace',
    fontSize: 14,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  fit.fit();
  // For tests and the curious: this page's terminal.
  window.spogTerminal = term;

  const state = document.getElementById("terminal-state");
  const setState = (text, kind) => {
    state.textContent = text;
    state.className = `badge ${kind}`;
    screen.dataset.state = text;
  };

  const socket = new WebSocket(socketUrl(screen.dataset.socket, term.cols, term.rows));
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  let recordingId = null;
  let over = false;
  let pinger = null;

  const send = (message) => {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(message);
    }
  };

  const end = (sentence) => {
    if (over) {
      return;
    }
    over = true;
    clearInterval(pinger);
    setState("ended", "");
    term.options.cursorBlink = false;
    document.getElementById("terminal-end-reason").textContent = sentence;
    const link = document.getElementById("terminal-recording");
    if (recordingId && screen.dataset.recordings) {
      link.href = `${screen.dataset.recordings}${recordingId}`;
      link.hidden = false;
    }
    document.getElementById("terminal-ended").hidden = false;
  };

  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      term.write(new Uint8Array(event.data));
      return;
    }
    const message = JSON.parse(event.data);
    switch (message.type) {
      case "session":
        recordingId = message.recording_id;
        screen.dataset.session = message.session_id;
        setState("connected", "ok");
        // The window may have changed while the shell started.
        fit.fit();
        term.focus();
        break;
      case "exit":
        end(endedBecause(message.reason, message.exit_code));
        break;
      case "error":
        end(`The session could not start: ${message.message}`);
        break;
      default:
        break; // `pong`, and whatever a newer hub says.
    }
  });

  socket.addEventListener("open", () => {
    pinger = setInterval(() => send(JSON.stringify({ type: "ping" })), PING_EVERY_MS);
  });

  socket.addEventListener("close", (event) => {
    // Refused before the upgrade (offline, not allowed) or cut off without `exit`.
    end(
      recordingId
        ? "The connection to the hub was lost; the session ended."
        : `The terminal could not be opened (the connection closed${event.code ? `, code ${event.code}` : ""}). Reload to try again.`,
    );
  });

  // Keystrokes and pastes as UTF-8; xterm's binary data (some mouse reports) byte for byte.
  term.onData((data) => send(encoder.encode(data)));
  term.onBinary((data) => {
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      bytes[i] = data.charCodeAt(i) & 0xff;
    }
    send(bytes);
  });
  term.onResize(({ cols, rows }) => send(JSON.stringify({ type: "resize", cols, rows })));

  let fitting = null;
  window.addEventListener("resize", () => {
    // Once per burst of resize events: each fit re-lays the terminal out.
    clearTimeout(fitting);
    fitting = setTimeout(() => fit.fit(), 100);
  });
}

if (screen) {
  start();
}
