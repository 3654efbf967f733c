// Terminal recordings in the asciinema player (loaded as a classic script beside this module):
// a finished recording plays its .cast with the chosen speed and idle time limit, from a
// search's match when it opened the page (`startAt`, the search's matches as markers); an
// active session is followed live over the watch socket.
const element = document.getElementById("cast-player");

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

let player = null;

function mount() {
  if (!window.AsciinemaPlayer) {
    // The player script is deferred like this module; wait for it when it comes later.
    window.addEventListener("load", mount, { once: true });
    return;
  }
  if (player) {
    player.dispose();
  }
  const cols = Number(element.dataset.cols);
  const rows = Number(element.dataset.rows);
  if (element.dataset.live) {
    player = window.AsciinemaPlayer.create(
      { driver: "websocket", url: socketUrl(element.dataset.live) },
      element,
      { cols, rows, autoPlay: true, fit: "width" },
    );
  } else {
    const speed = Number(document.getElementById("player-speed").value) || 1;
    const idle = document.getElementById("player-idle").value;
    const options = { cols, rows, autoPlay: true, fit: "width", speed };
    if (element.dataset.startAt) {
      options.startAt = Number(element.dataset.startAt);
    }
    if (idle) {
      options.idleTimeLimit = Number(idle);
    } else {
      // The player places markers on its timeline after idle skipping: only without it are
      // the matches' times where they belong.
      options.markers = JSON.parse(element.dataset.markers || "[]");
    }
    player = window.AsciinemaPlayer.create(element.dataset.cast, element, options);
  }
  // For tests and the curious: the player of this page.
  window.spogPlayer = player;
}

if (element) {
  for (const id of ["player-speed", "player-idle"]) {
    document.getElementById(id)?.addEventListener("change", mount);
  }
  mount();
}
