// Desktop > Playback: frames arrive over the playback socket at their recorded pace (the
// server paces them, skipping idle gaps longer than the chosen limit); this draws each on the
// canvas and sends play/pause/seek/speed/idle. A recording still being made is followed live
// from its newest frame until it ends.
const panel = document.getElementById("desktop-player");

if (panel) {
  const canvas = document.getElementById("desktop-canvas");
  const context = canvas.getContext("2d");
  const playButton = document.getElementById("desktop-play");
  const seek = document.getElementById("desktop-seek");
  const time = document.getElementById("desktop-time");
  const speed = document.getElementById("desktop-speed");
  const idle = document.getElementById("desktop-idle");
  const status = document.getElementById("desktop-status");
  let playing = true;
  let dragging = false;
  let shown = 0;

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // Gaps longer than the chosen idle limit are skipped from the start.
  const params = new URLSearchParams();
  if (idle.value) {
    params.set("idle_ms", idle.value);
  }
  if (panel.dataset.active === "true") {
    params.set("live", "true");
  }
  const stream = params.size ? `${panel.dataset.stream}?${params}` : panel.dataset.stream;
  const socket = new WebSocket(`${scheme}//${location.host}${stream}`);
  socket.binaryType = "arraybuffer";

  const send = (message) => {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  };

  const showPosition = (ms) => {
    panel.dataset.positionMs = String(ms);
    time.textContent = `${(ms / 1000).toFixed(1)} s`;
    if (!dragging) {
      seek.value = String(ms);
    }
  };

  socket.addEventListener("message", async (event) => {
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "meta") {
        seek.max = String(message.duration_ms);
        panel.dataset.durationMs = String(message.duration_ms);
        status.textContent = `${message.frame_count} frames`;
        if (message.frame_count === 0) {
          status.textContent = "No frames recorded yet.";
        }
        if (message.active) {
          panel.dataset.live = "true";
          status.textContent = "Live: following the recording as it is made.";
        }
      } else if (message.type === "end") {
        status.textContent = "End of recording.";
        delete panel.dataset.live;
        panel.dataset.ended = "true";
      }
      return;
    }
    const view = new DataView(event.data);
    const elapsed = Number(view.getBigUint64(0));
    const image = await createImageBitmap(new Blob([event.data.slice(8)]));
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    image.close();
    shown += 1;
    panel.dataset.framesShown = String(shown);
    if (elapsed > Number(seek.max)) {
      // Followed live: the recording has grown.
      seek.max = String(elapsed);
      panel.dataset.durationMs = String(elapsed);
    }
    showPosition(elapsed);
  });
  socket.addEventListener("close", () => {
    status.textContent = "Playback stopped.";
  });

  playButton.addEventListener("click", () => {
    playing = !playing;
    send({ type: playing ? "play" : "pause" });
    playButton.textContent = playing ? "Pause" : "Play";
    playButton.setAttribute("aria-pressed", String(playing));
  });
  seek.addEventListener("input", () => {
    dragging = true;
  });
  seek.addEventListener("change", () => {
    dragging = false;
    delete panel.dataset.ended;
    send({ type: "seek", ms: Number(seek.value) });
  });
  speed.addEventListener("change", () => {
    send({ type: "speed", value: Number(speed.value) });
  });
  idle.addEventListener("change", () => {
    send({ type: "idle", ms: idle.value ? Number(idle.value) : null });
  });
}
