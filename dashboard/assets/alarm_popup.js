/* The alarm pop-up's tone and the wall screen's kiosk mode.
   Browsers refuse sound before the first click on a page: the pop-up shows regardless, and a
   hint asks once for a click, after which the tone plays. */
(function () {
  "use strict";
  var CURSOR_IDLE_MS = 3000;
  var sound = { want: false, hinted: false };

  function el(id) { return document.getElementById(id); }

  function hint(show) {
    var h = el("popup-sound-hint");
    if (h) { h.style.display = show ? "block" : "none"; }
  }

  function play() {
    var audio = el("popup-audio");
    if (!audio || !sound.want) { return; }
    var p;
    try { p = audio.play(); } catch (e) { p = null; }
    if (p && p.then) {
      p.then(function () { hint(false); }, function () {
        // Blocked until a user gesture: say so once, then wait for any click or key.
        if (!sound.hinted && sound.want) { sound.hinted = true; hint(true); }
      });
    }
  }

  function stop() {
    var audio = el("popup-audio");
    hint(false);
    if (audio) { audio.pause(); audio.currentTime = 0; }
  }

  function unlock() {
    if (sound.want) { play(); } else { hint(false); }
  }
  document.addEventListener("pointerdown", unlock, true);
  document.addEventListener("keydown", unlock, true);

  // Kiosk: /?kiosk=1 hides the controls and, after a while without movement, the cursor.
  function kiosk() {
    var on = new URLSearchParams(window.location.search).get("kiosk") === "1";
    if (!on) { return; }
    var root = document.documentElement;
    root.classList.add("gc-kiosk");
    var timer = null;
    function idle() {
      root.classList.remove("gc-nocursor");
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(function () { root.classList.add("gc-nocursor"); }, CURSOR_IDLE_MS);
    }
    document.addEventListener("mousemove", idle, { passive: true });
    idle();
  }
  kiosk();

  var clientside = {
    // Input: the alarm on the pop-up (null when closed). The output is only a marker.
    sound: function (state) {
      var id = state && state.id ? String(state.id) : "";
      var was = sound.want;
      sound.want = !!id;
      if (sound.want && !was) { play(); }
      if (!sound.want && was) { stop(); }
      return id;
    }
  };
  window.dash_clientside = Object.assign({}, window.dash_clientside, { gridcc_popup: clientside });
})();
